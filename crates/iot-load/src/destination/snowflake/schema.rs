//! What a dataset's schema must hold before a batch is written: the schema, the
//! tables and the columns the model gained, the commit turn and the stage; the
//! views earlier loaders kept are dropped (dbt's models define them now). A loader holds only the privileges `config/snowflake/provision.sql` grants
//! it, and Snowflake checks a CREATE privilege even when `IF NOT EXISTS` finds the
//! object, so everything is looked up first and only what is missing is created.

use super::{Snowflake, column_text, sql, stage, text_rows};
use crate::destination::ddl;
use crate::error::DestinationError;
use crate::tables;
use sql::SnowflakeSql;

impl Snowflake {
    /// Creates what is missing (schema, tables, columns the model gained, the stage)
    /// and drops an earlier loader's views, after looking at what is there: a loader holds only the
    /// privileges `config/snowflake/provision.sql` grants it, and Snowflake checks a
    /// CREATE privilege even when `IF NOT EXISTS` finds the object.
    pub(super) fn prepare(&mut self) -> Result<(), DestinationError> {
        if self.tables_ready {
            return Ok(());
        }
        let schema = self.options.schema.clone();
        let found = self
            .exec("the schema", &sql::schema_query(&schema))
            .and_then(|r| text_rows("the schema", r))?;
        let (columns, views) = if found.is_empty() {
            self.exec("the schema", &ddl::create_schema::<SnowflakeSql>(&schema))?;
            (Vec::new(), Vec::new())
        } else {
            let columns = self
                .exec("the tables", &sql::columns_query(&schema))
                .and_then(|r| text_rows("the tables", r))?;
            let views = self
                .exec("the views", &sql::views_query(&schema))
                .and_then(|r| text_rows("the views", r))?;
            (columns, views)
        };
        let named = |row: &[Option<String>], name: &str| {
            row.first()
                .and_then(Option::as_deref)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        };
        for layout in tables::layouts() {
            let table = layout.name;
            let existing: Vec<(String, String)> = columns
                .iter()
                .filter(|row| named(row, table))
                .filter_map(|row| match row.as_slice() {
                    [_, Some(name), ty] => Some((name.clone(), ty.clone().unwrap_or_default())),
                    _ => None,
                })
                .collect();
            if existing.is_empty() {
                self.exec(table, &ddl::create_table::<SnowflakeSql>(&schema, &layout))?;
                continue;
            }
            for change in ddl::changes::<SnowflakeSql>(&schema, &layout, &existing) {
                tracing::info!(table, change, "changing a table to match the model");
                self.exec(table, &change)?;
            }
        }
        if !columns.iter().any(|row| named(row, sql::COMMIT_TURN)) {
            for statement in sql::create_commit_turn(&schema) {
                self.exec(sql::COMMIT_TURN, &statement)?;
            }
        }
        // The session's current schema: `COPY` needs one, even with every name
        // qualified.
        self.exec("the schema", &sql::use_schema(&schema))?;
        self.prepare_stage()?;
        for row in &views {
            let former = row.get(1).and_then(Option::as_deref);
            if let (Some(Some(view)), true) = (
                row.first(),
                former.is_some_and(|c| c.starts_with(sql::FORMER_VIEW)),
            ) {
                tracing::info!(
                    view,
                    "dropping a view of an earlier loader: dbt's models define it now"
                );
                self.exec("the views", &sql::drop_view(&schema, view))?;
            }
        }
        self.tables_ready = true;
        Ok(())
    }

    /// Creates the stage if missing, and removes the files of attempts abandoned
    /// between `PUT` and `COPY` (a loader killed there) once they are old enough
    /// that no loader is still at work on them.
    fn prepare_stage(&mut self) -> Result<(), DestinationError> {
        let schema = self.options.schema.clone();
        let what = stage::STAGE;
        let found = self
            .exec(what, &stage::stage_query(&self.options.database, &schema))
            .and_then(|r| column_text(what, r, 1))?;
        if found.is_empty() {
            self.exec(what, &stage::create_stage(&schema))?;
            return Ok(());
        }
        let files = self
            .exec(what, &stage::list(&schema))
            .and_then(|r| column_text(what, r, 0))?;
        for folder in stage::abandoned(&files, stage::now_seconds()) {
            tracing::info!(
                folder,
                "removing the files of an abandoned attempt from the stage"
            );
            self.exec(what, &stage::remove(&schema, &folder))?;
        }
        Ok(())
    }
}
