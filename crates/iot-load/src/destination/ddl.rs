//! The SQL both destinations derive from the table declarations: tables created
//! when missing, and existing tables brought up to date by column name. A
//! destination says only how it spells names and types.

use crate::tables::{ColumnType, Layout};

/// How a database spells what the declarations leave open.
pub trait Dialect {
    /// A quoted identifier.
    fn ident(name: &str) -> String;

    /// A column type, spelt as the database's `information_schema.columns` reports
    /// it where [`Dialect::COMPARES_TYPES`], so that a changed type can be seen.
    fn sql_type(ty: ColumnType) -> &'static str;

    /// Whether existing columns of another type are converted in place. Where the
    /// database reports types in other words than it accepts them, only missing
    /// columns are added.
    const COMPARES_TYPES: bool;

    /// A schema-qualified table name.
    fn table(schema: &str, table: &str) -> String {
        format!("{}.{}", Self::ident(schema), Self::ident(table))
    }

    /// The quoted column names of a table, comma separated, in declaration order.
    fn column_list(layout: &Layout) -> String {
        let names: Vec<String> = layout.columns.iter().map(|(n, _)| Self::ident(n)).collect();
        names.join(", ")
    }
}

pub fn create_schema<D: Dialect>(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", D::ident(schema))
}

pub fn create_table<D: Dialect>(schema: &str, layout: &Layout) -> String {
    let mut parts: Vec<String> = layout
        .columns
        .iter()
        .map(|(name, ty)| format!("{} {}", D::ident(name), D::sql_type(*ty)))
        .collect();
    if !layout.key.is_empty() {
        let key: Vec<String> = layout.key.iter().map(|k| D::ident(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        D::table(schema, layout.name),
        parts.join(", ")
    )
}

/// The statements that make an existing table match `layout`: columns the model
/// gained are added (old rows read NULL), and, where the dialect compares types,
/// columns whose type changed are converted in place. `existing` holds the table's
/// columns as the database lists them: name (any case) and type.
pub fn changes<D: Dialect>(
    schema: &str,
    layout: &Layout,
    existing: &[(String, String)],
) -> Vec<String> {
    let table = D::table(schema, layout.name);
    layout
        .columns
        .iter()
        .filter_map(|&(name, ty)| {
            let (column, want) = (D::ident(name), D::sql_type(ty));
            let change = match existing.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                None => format!("ADD COLUMN {column} {want}"),
                Some((_, have)) if D::COMPARES_TYPES && have != want => {
                    format!("ALTER COLUMN {column} SET DATA TYPE {want}")
                }
                Some(_) => return None,
            };
            Some(format!("ALTER TABLE {table} {change}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{LOADS, OFFSETS};

    struct Plain;

    impl Dialect for Plain {
        fn ident(name: &str) -> String {
            format!("\"{name}\"")
        }
        fn sql_type(ty: ColumnType) -> &'static str {
            match ty {
                ColumnType::Json => "JSON",
                ColumnType::Int32 => "INTEGER",
                _ => "OTHER",
            }
        }
        const COMPARES_TYPES: bool = true;
    }

    #[test]
    fn a_table_has_every_column_and_its_key() {
        let sql = create_table::<Plain>("s", &OFFSETS.layout());
        assert!(
            sql.starts_with("CREATE TABLE IF NOT EXISTS \"s\".\"_kafka_offsets\" (\"topic\" OTHER, \"partition\" INTEGER,"),
            "{sql}"
        );
        assert!(
            sql.ends_with(", PRIMARY KEY (\"topic\", \"partition\"))"),
            "{sql}"
        );
    }

    #[test]
    fn adds_missing_columns_and_converts_changed_ones_by_name() {
        // An old `_loads`: JSON kept as text, no `error` column, other columns in
        // another order and case.
        let mut existing: Vec<(String, String)> = LOADS
            .layout()
            .columns
            .iter()
            .rev()
            .filter(|(n, _)| *n != "error")
            .map(|(n, ty)| (n.to_uppercase(), Plain::sql_type(*ty).to_owned()))
            .collect();
        for (name, ty) in &mut existing {
            if name == "GAPS" {
                *ty = "VARCHAR".into();
            }
        }
        let changes = changes::<Plain>("s", &LOADS.layout(), &existing);
        assert_eq!(
            changes,
            [
                "ALTER TABLE \"s\".\"_loads\" ALTER COLUMN \"gaps\" SET DATA TYPE JSON",
                "ALTER TABLE \"s\".\"_loads\" ADD COLUMN \"error\" OTHER",
            ]
        );
    }
}
