"""The scale-table rows cached on disk: the same table as a fresh build, entries keyed by what
the rows depend on, damaged entries rebuilt, no cache where none can be written."""
import numpy as np
import pytest
from ransform import _core, tables


def same_table(a, b):
    assert a.rows == b.rows and np.array_equal(a.thresholds, b.thresholds)
    for r in range(a.rows):
        assert a.offset(r) == b.offset(r) and np.array_equal(a.frequencies(r), b.frequencies(r))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RANSFORM_CACHE_DIR", str(tmp_path))
    tables._cached_native.cache_clear()
    yield tmp_path / "tables"
    tables._cached_native.cache_clear()


def fresh(**kwargs):
    return _core.ScaleTable(kwargs.get("family", "gaussian"), kwargs.get("scales"), kwargs.get("precision", 16),
                            kwargs.get("tail_mass", 1e-9))


def test_cached_rows_give_the_table_a_fresh_build_gives(cache):
    first = tables.GaussianTable()
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1
    tables._cached_native.cache_clear()
    second = tables.GaussianTable()  # from the file
    assert list(cache.glob("*.npz")) == entries
    same_table(first._native, fresh())
    same_table(second._native, fresh())
    data = np.arange(-40, 40, dtype=np.int32)
    idx = np.full(80, 60, np.int32)
    assert tables.GaussianTable() is not None and _core.encode(data, idx, second._native, 1) == \
        _core.encode(data, idx, fresh(), 1)


def test_every_definition_has_its_own_entry(cache):
    tables.GaussianTable()
    tables.LaplaceTable()
    tables.GaussianTable(precision=14)
    tables.GaussianTable([0.5, 1.0, 2.0])
    tables.GaussianTable(tail_mass=1e-6)
    assert len(list(cache.glob("*.npz"))) == 5
    tables._cached_native.cache_clear()
    same_table(tables.GaussianTable([0.5, 1.0, 2.0])._native, fresh(scales=np.array([0.5, 1.0, 2.0], np.float32)))
    same_table(tables.LaplaceTable()._native, fresh(family="laplace"))


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"junk", lambda b: b[:-40] + bytes(40)])
def test_a_damaged_entry_is_rebuilt_not_used(cache, damage):
    tables.GaussianTable()
    [entry] = cache.glob("*.npz")
    entry.write_bytes(damage(entry.read_bytes()))
    tables._cached_native.cache_clear()
    same_table(tables.GaussianTable()._native, fresh())
    tables._cached_native.cache_clear()
    same_table(tables.GaussianTable()._native, fresh())  # and the entry was written again


def test_an_entry_copied_under_another_name_is_refused(cache):
    """Valid rows of another definition, with their own consistent digest, must not pass."""
    tables.GaussianTable()
    [gaussian] = cache.glob("*.npz")
    tables.LaplaceTable()
    [laplace] = [p for p in cache.glob("*.npz") if p != gaussian]
    gaussian.write_bytes(laplace.read_bytes())
    tables._cached_native.cache_clear()
    same_table(tables.GaussianTable()._native, fresh())


def test_no_cache_when_off_or_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv("RANSFORM_CACHE_DIR", "off")
    tables._cached_native.cache_clear()
    same_table(tables.GaussianTable()._native, fresh())
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv("RANSFORM_CACHE_DIR", str(blocked))
    tables._cached_native.cache_clear()
    same_table(tables.GaussianTable()._native, fresh())
    tables._cached_native.cache_clear()
