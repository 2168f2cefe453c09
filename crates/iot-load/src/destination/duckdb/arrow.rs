//! A table's rows as an Arrow record batch, the form DuckDB appends fastest: a
//! whole column at a time, with no per-value call or cast. Column types map to
//! Arrow types that DuckDB reads as the table's own (UUID, TIMESTAMPTZ, DOUBLE,
//! BIGINT, INTEGER, VARCHAR, BLOB), so nothing is converted on the way in.

use std::collections::HashMap;
use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, BinaryBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;

use crate::tables::{Cell, Column, ColumnType, Context, Table};

/// Every column of `table` for `records`, built column by column.
pub fn record_batch<R>(
    table: &Table<R>,
    records: &[R],
    context: &Context,
) -> Result<RecordBatch, ArrowError> {
    let fields: Vec<Field> = table.columns.iter().map(field).collect();
    let arrays = table
        .columns
        .iter()
        .map(|column| {
            let mut builder = ColumnBuilder::new(column.ty, records.len());
            for record in records {
                builder.push((column.value)(record, context))?;
            }
            Ok(builder.finish())
        })
        .collect::<Result<Vec<ArrayRef>, ArrowError>>()?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

fn field<R>(column: &Column<R>) -> Field {
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
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Text | ColumnType::Json => DataType::Utf8,
        ColumnType::Bytes => DataType::Binary,
    }
}

enum ColumnBuilder {
    Uuid(FixedSizeBinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Double(Float64Builder),
    Integer(Int64Builder),
    Int32(Int32Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
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
            ColumnType::Int32 => Self::Int32(Int32Builder::with_capacity(rows)),
            ColumnType::Text | ColumnType::Json => {
                Self::Text(StringBuilder::with_capacity(rows, rows * 16))
            }
            ColumnType::Bytes => Self::Bytes(BinaryBuilder::with_capacity(rows, rows * 64)),
        }
    }

    /// Appends a value. Cells come in their column's own variant (the declarations
    /// make them so); another is refused rather than stored wrong.
    fn push(&mut self, cell: Cell) -> Result<(), ArrowError> {
        match (self, cell) {
            (Self::Uuid(b), Cell::Uuid(u)) => match u {
                Some(u) => b.append_value(u.as_bytes())?,
                None => b.append_null(),
            },
            (Self::Timestamp(b), Cell::Timestamp(t)) => {
                b.append_option(t.map(|t| t.millis() * 1000));
            }
            (Self::Double(b), Cell::Double(f)) => b.append_option(f),
            (Self::Integer(b), Cell::Integer(i)) => b.append_option(i),
            (Self::Int32(b), Cell::Int32(i)) => b.append_option(i),
            (Self::Text(b), Cell::Text(s)) => b.append_option(s),
            (Self::Text(b), Cell::Json(s)) => b.append_option(s),
            (Self::Bytes(b), Cell::Bytes(v)) => b.append_option(v),
            (_, other) => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "a value {other:?} in a column of another type"
                )));
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Uuid(mut b) => Arc::new(b.finish()),
            Self::Timestamp(mut b) => Arc::new(b.finish()),
            Self::Double(mut b) => Arc::new(b.finish()),
            Self::Integer(mut b) => Arc::new(b.finish()),
            Self::Int32(mut b) => Arc::new(b.finish()),
            Self::Text(mut b) => Arc::new(b.finish()),
            Self::Bytes(mut b) => Arc::new(b.finish()),
        }
    }
}
