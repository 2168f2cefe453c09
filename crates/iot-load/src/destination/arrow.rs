//! A table's rows as an Arrow record batch, built a whole column at a time: the
//! form DuckDB appends fastest, and what Snowflake's Parquet files are written from.
//!
//! [`Flavor::Native`] maps column types to the Arrow types DuckDB reads as the
//! table's own (UUID, TIMESTAMPTZ, DOUBLE, BIGINT, INTEGER, VARCHAR, BLOB), so
//! nothing is converted on the way in. [`Flavor::Text`] writes ids, timestamps and
//! bytes as text (hyphenated, ISO 8601 with `+00:00`, hex), which `COPY INTO`
//! casts to the column's type explicitly: the meaning of a Parquet timestamp or
//! binary value in Snowflake depends on file-format options (`USE_LOGICAL_TYPE`,
//! `BINARY_AS_TEXT`), text does not.

use std::collections::HashMap;
use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, BinaryBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;

use iot_model::Timestamp;

use crate::tables::{Cell, Column, ColumnType, Context, Table};

/// How ids, timestamps and bytes are laid out: see the module's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Native,
    Text,
}

/// Every column of `table` for `records`, built column by column.
pub fn record_batch<R>(
    table: &Table<R>,
    records: &[R],
    context: &Context,
    flavor: Flavor,
) -> Result<RecordBatch, ArrowError> {
    let fields: Vec<Field> = table.columns.iter().map(|c| field(c, flavor)).collect();
    let arrays = table
        .columns
        .iter()
        .map(|column| {
            let mut builder = ColumnBuilder::new(data_type(column.ty, flavor), records.len());
            for record in records {
                builder.push((column.value)(record, context))?;
            }
            Ok(builder.finish())
        })
        .collect::<Result<Vec<ArrayRef>, ArrowError>>()?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

fn field<R>(column: &Column<R>, flavor: Flavor) -> Field {
    let field = Field::new(column.name, data_type(column.ty, flavor), true);
    match column.ty {
        // Sixteen bytes are a UUID only with Arrow's canonical extension name.
        ColumnType::Uuid if flavor == Flavor::Native => field.with_metadata(HashMap::from([(
            "ARROW:extension:name".to_owned(),
            "arrow.uuid".to_owned(),
        )])),
        _ => field,
    }
}

fn data_type(ty: ColumnType, flavor: Flavor) -> DataType {
    match ty {
        ColumnType::Uuid | ColumnType::Timestamp | ColumnType::Bytes if flavor == Flavor::Text => {
            DataType::Utf8
        }
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

/// A timestamp as Snowflake reads a `TIMESTAMP_TZ` unambiguously: ISO 8601 with
/// `T`, milliseconds and the offset attached (`YYYY-MM-DDTHH:MM:SS.mmm+00:00`).
pub fn iso_text(t: Timestamp) -> String {
    let text = t.to_string();
    format!("{}+00:00", text.trim_end_matches('Z'))
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
    fn new(ty: DataType, rows: usize) -> Self {
        match ty {
            DataType::FixedSizeBinary(_) => {
                Self::Uuid(FixedSizeBinaryBuilder::with_capacity(rows, 16))
            }
            DataType::Timestamp(..) => Self::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            DataType::Float64 => Self::Double(Float64Builder::with_capacity(rows)),
            DataType::Int64 => Self::Integer(Int64Builder::with_capacity(rows)),
            DataType::Int32 => Self::Int32(Int32Builder::with_capacity(rows)),
            DataType::Binary => Self::Bytes(BinaryBuilder::with_capacity(rows, rows * 64)),
            _ => Self::Text(StringBuilder::with_capacity(rows, rows * 16)),
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
            // Flavor::Text: the forms `COPY INTO` casts back (see the module's comment).
            (Self::Text(b), Cell::Uuid(u)) => {
                b.append_option(u.map(|u| u.hyphenated().to_string()))
            }
            (Self::Text(b), Cell::Timestamp(t)) => b.append_option(t.map(iso_text)),
            (Self::Text(b), Cell::Bytes(v)) => b.append_option(v.map(|v| {
                v.iter()
                    .fold(String::with_capacity(v.len() * 2), |mut hex, byte| {
                        use std::fmt::Write;
                        let _ = write!(hex, "{byte:02X}");
                        hex
                    })
            })),
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
