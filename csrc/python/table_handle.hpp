// table_handle.hpp: the Python-visible table objects. Every table exposes a SymbolTables;
// scale tables also own the scale -> row map.
#pragma once

#include <memory>

#include "core/scale_table.hpp"
#include "core/symbol_tables.hpp"

namespace ransform::py_tables {

struct Table {
  virtual ~Table() = default;
  virtual const SymbolTables& symbols() const = 0;
};

struct ScaleTableHandle : Table {
  explicit ScaleTableHandle(ScaleTable t) : table(std::move(t)) {}
  const SymbolTables& symbols() const override { return table.tables(); }
  ScaleTable table;
};

struct CategoricalTableHandle : Table {
  explicit CategoricalTableHandle(SymbolTables t) : table(std::move(t)) {}
  const SymbolTables& symbols() const override { return table; }
  SymbolTables table;
};

}  // namespace ransform::py_tables
