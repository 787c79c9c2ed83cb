"""The one varint of every ransform byte format (FORMAT.md §2): one spelling per number."""
import pytest
from ransform import varint


@pytest.mark.parametrize("n,spelling", [(0, "00"), (4, "04"), (127, "7f"), (128, "8001"), (300, "ac02"),
                                        (2**21, "80808001"), (2**64 - 1, "ffffffffffffffffff01")])
def test_the_spec_examples_round_trip(n, spelling):
    assert varint.encode(n).hex() == spelling
    assert varint.decode(b"\xaa" + bytes.fromhex(spelling) + b"\xbb", 1) == (n, 1 + len(spelling) // 2)


@pytest.mark.parametrize("spelling,message,truncated", [
    ("8000", "not a minimal varint", False),
    ("ff00", "not a minimal varint", False),
    ("80808080808080808002", "does not fit in 64 bits", False),
    ("8080808080808080808001", "more than 10 bytes", False),
    ("", "ends inside", True),
    ("8080", "ends inside", True),
])
def test_other_spellings_are_refused(spelling, message, truncated):
    with pytest.raises(varint.VarintError, match=message) as refused:
        varint.decode(bytes.fromhex(spelling), 0)
    assert refused.value.truncated is truncated


def test_numbers_outside_64_bits_cannot_be_written():
    for n in (-1, 2**64):
        with pytest.raises(ValueError):
            varint.encode(n)
