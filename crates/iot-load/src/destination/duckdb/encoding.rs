//! Rows of one table as an Arrow record batch, the form DuckDB appends fastest: a
//! whole column at a time, with no per-value call or cast. Column types map to
//! Arrow types that DuckDB reads as the table's own (UUID, TIMESTAMPTZ, DOUBLE,
//! BIGINT, VARCHAR), so nothing is converted on the way in.

use std::collections::HashMap;
use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, FixedSizeBinaryBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;

use crate::columns::{Cell, Column, ColumnType};

/// Builds one table's record batch, row by row.
pub struct RecordBatchBuilder {
    columns: Vec<Column>,
    builders: Vec<ColumnBuilder>,
}

impl RecordBatchBuilder {
    pub fn new(columns: impl Iterator<Item = Column>, rows: usize) -> Self {
        let columns: Vec<Column> = columns.collect();
        let builders = columns
            .iter()
            .map(|c| ColumnBuilder::new(c.ty, rows))
            .collect();
        Self { columns, builders }
    }

    /// Appends one row, its cells in column order.
    pub fn push(&mut self, cells: &[Cell]) -> Result<(), ArrowError> {
        if cells.len() != self.columns.len() {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a row of {} values for {} columns",
                cells.len(),
                self.columns.len()
            )));
        }
        for ((builder, column), cell) in self.builders.iter_mut().zip(&self.columns).zip(cells) {
            builder.push(*cell).map_err(|got| {
                ArrowError::InvalidArgumentError(format!(
                    "column {} holds {:?} values, not {got}",
                    column.name, column.ty
                ))
            })?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<RecordBatch, ArrowError> {
        let fields: Vec<Field> = self.columns.iter().map(field).collect();
        let arrays: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    }
}

fn field(column: &Column) -> Field {
    let field = Field::new(column.name, data_type(column.ty), true);
    match column.ty {
        // Sixteen bytes are a UUID only with Arrow's canonical extension name.
        ColumnType::Uuid => field.with_metadata(HashMap::from([(
            "ARROW:extension:name".to_owned(),
            "arrow.uuid".to_owned(),
        )])),
        _ => field,
    }
}

fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Uuid => DataType::FixedSizeBinary(16),
        // Microseconds, DuckDB's own unit: milliseconds would be cast on the way in.
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Double => DataType::Float64,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Text | ColumnType::Json => DataType::Utf8,
    }
}

enum ColumnBuilder {
    Uuid(FixedSizeBinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Double(Float64Builder),
    Integer(Int64Builder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            ColumnType::Uuid => Self::Uuid(FixedSizeBinaryBuilder::with_capacity(rows, 16)),
            ColumnType::Timestamp => Self::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            ColumnType::Double => Self::Double(Float64Builder::with_capacity(rows)),
            ColumnType::Integer => Self::Integer(Int64Builder::with_capacity(rows)),
            ColumnType::Text | ColumnType::Json => {
                Self::Text(StringBuilder::with_capacity(rows, rows * 16))
            }
        }
    }

    /// Appends a value; a cell of another type is a bug in the column lists, and
    /// comes back as the name of what it was.
    fn push(&mut self, cell: Cell) -> Result<(), &'static str> {
        match (self, cell) {
            (Self::Uuid(b), Cell::Null) => b.append_null(),
            (Self::Timestamp(b), Cell::Null) => b.append_null(),
            (Self::Double(b), Cell::Null) => b.append_null(),
            (Self::Integer(b), Cell::Null) => b.append_null(),
            (Self::Text(b), Cell::Null) => b.append_null(),
            (Self::Uuid(b), Cell::Uuid(u)) => {
                b.append_value(u.as_bytes()).map_err(|_| "a UUID")?;
            }
            (Self::Timestamp(b), Cell::Time(t)) => b.append_value(t.millis() * 1000),
            (Self::Double(b), Cell::Double(f)) => b.append_value(f),
            (Self::Integer(b), Cell::Integer(i)) => b.append_value(i),
            (Self::Text(b), Cell::Text(s)) => b.append_value(s),
            (_, other) => return Err(other.kind()),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Uuid(mut b) => Arc::new(b.finish()),
            Self::Timestamp(mut b) => Arc::new(b.finish()),
            Self::Double(mut b) => Arc::new(b.finish()),
            Self::Integer(mut b) => Arc::new(b.finish()),
            Self::Text(mut b) => Arc::new(b.finish()),
        }
    }
}
