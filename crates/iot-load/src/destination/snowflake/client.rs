//! The connection to Snowflake: the `snowflake-api` client with an optional
//! endpoint override, and its errors turned into ones that say which setting to fix.

use std::time::Duration;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use snowflake_api::{
    AuthArgs, AuthType, CertificateArgs, PasswordArgs, QueryResult, SnowflakeApi,
    SnowflakeApiBuilder, SnowflakeApiError,
};

use super::sql::{self, SnowflakeSql};
use super::upload::{Pending, Uploads};
use super::{SnowflakeAuth, SnowflakeOptions, env};
use crate::destination::ddl::Dialect;
use crate::error::DestinationError;

/// Sends every request to `base` instead of `https://{account}.snowflakecomputing.com`,
/// keeping path and query: for private link, proxies and emulators.
struct Endpoint {
    base: reqwest::Url,
}

#[async_trait::async_trait]
impl Middleware for Endpoint {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        redirect(request.url_mut(), &self.base);
        next.run(request, extensions).await
    }
}

/// `url` with the scheme, host and port of `base`, and `base`'s path before its own.
fn redirect(url: &mut reqwest::Url, base: &reqwest::Url) {
    let path = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        url.path().trim_start_matches('/')
    );
    let query = url.query().map(str::to_owned);
    let mut moved = base.clone();
    moved.set_path(&path);
    moved.set_query(query.as_deref());
    *url = moved;
}

/// The client for a run, which uploads the files `uploads` holds when their `PUT`
/// is answered. Authentication happens with the first statement.
pub fn connect(
    options: &SnowflakeOptions,
    uploads: &Pending,
) -> Result<SnowflakeApi, DestinationError> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("iot-streaming-load/", env!("CARGO_PKG_VERSION")))
        .gzip(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(options.request_timeout)
        // Servers and proxies close keep-alive connections left idle (uvicorn after
        // 5 s, load balancers after a minute or so). A statement sent on one the
        // server is closing fails with "connection closed before message completed"
        // and costs its batch a retry, so a connection idle for 4 s is opened anew.
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .map_err(|e| DestinationError::Open {
            path: endpoint(options),
            source: e.into(),
        })?;
    // No retry layer here: a statement is retried, if at all, as part of its whole
    // batch (see `Snowflake::commit`), never on its own inside a transaction.
    let mut client = reqwest_middleware::ClientBuilder::new(http.clone());
    if let Some(base) = &options.url {
        client = client.with(Endpoint { base: base.clone() });
    }
    client = client.with(Uploads {
        pending: uploads.clone(),
        http,
    });
    let auth_type = match &options.auth {
        SnowflakeAuth::Password(password) => AuthType::Password(PasswordArgs {
            password: password.clone(),
        }),
        SnowflakeAuth::KeyPair { private_key_pem } => AuthType::Certificate(CertificateArgs {
            private_key_pem: private_key_pem.clone(),
        }),
    };
    let auth = AuthArgs {
        account_identifier: options.account.clone(),
        warehouse: options.warehouse.clone(),
        database: Some(options.database.clone()),
        schema: None,
        username: options.user.clone(),
        role: options.role.clone(),
        auth_type,
    };
    SnowflakeApiBuilder::new(auth)
        .with_client(client.build())
        .build()
        .map_err(|e| explain(options, "the connection", e))
}

/// Where requests go, for messages.
pub fn endpoint(options: &SnowflakeOptions) -> String {
    options.url.as_ref().map_or_else(
        || format!("https://{}.snowflakecomputing.com", options.account),
        |u| u.to_string(),
    )
}

/// The number of rows a DML statement changed. Snowflake answers DML with a JSON
/// row of counts (changed rows first), whatever result format was asked for.
pub fn changed_rows(result: &QueryResult) -> i64 {
    let QueryResult::Json(json) = result else {
        return 0;
    };
    json.value
        .get(0)
        .and_then(|row| row.get(0))
        .and_then(|count| {
            count
                .as_str()
                .and_then(|s| s.parse().ok())
                .or(count.as_i64())
        })
        .unwrap_or(0)
}

/// The rows of a query whose columns are all text.
pub fn text_rows(result: QueryResult) -> Result<Vec<Vec<Option<String>>>, String> {
    text_columns(result, None)
}

/// The `index`-th column of a query's rows, as text (that column must be text; the
/// others may be anything).
pub fn column_text(result: QueryResult, index: usize) -> Result<Vec<Option<String>>, String> {
    let rows = text_columns(result, Some(index))?;
    Ok(rows
        .into_iter()
        .map(|mut row| row.pop().flatten())
        .collect())
}

/// The rows of a query, every column (or only column `only`) as text.
fn text_columns(
    result: QueryResult,
    only: Option<usize>,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let wanted = |i: usize| only.is_none_or(|only| only == i);
    match result {
        QueryResult::Empty => Ok(Vec::new()),
        QueryResult::Json(json) => json
            .value
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        row.as_array()
                            .map(|cells| {
                                cells
                                    .iter()
                                    .enumerate()
                                    .filter(|(i, _)| wanted(*i))
                                    .map(|(_, c)| c.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .ok_or_else(|| format!("expected rows, got {}", json.value)),
        QueryResult::Arrow(batches) => {
            let mut rows = Vec::new();
            for batch in batches {
                let columns = batch
                    .columns()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| wanted(*i))
                    .map(|(_, c)| {
                        c.as_string_opt::<i32>()
                            .ok_or_else(|| format!("expected text, got {}", c.data_type()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if columns.is_empty() {
                    return Err(format!("expected a column {only:?}"));
                }
                for i in 0..batch.num_rows() {
                    rows.push(
                        columns
                            .iter()
                            .map(|c| (!c.is_null(i)).then(|| c.value(i).to_owned()))
                            .collect(),
                    );
                }
            }
            Ok(rows)
        }
    }
}

/// Whether trying the batch again may succeed: the network, the service having a
/// moment, or a transaction that collided with another loader's.
pub fn is_transient(error: &SnowflakeApiError) -> bool {
    use snowflake_api::connection::ConnectionError;
    let request = |e: &reqwest::Error| {
        e.is_connect()
            || e.is_timeout()
            || e.is_request()
            || e.status()
                .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
    };
    match error {
        SnowflakeApiError::RequestError(ConnectionError::RequestError(e)) => request(e),
        SnowflakeApiError::RequestError(ConnectionError::RequestMiddlewareError(
            reqwest_middleware::Error::Reqwest(e),
        )) => request(e),
        // The login's own request failing: the client only lets us see its text.
        SnowflakeApiError::AuthError(e) => {
            let text = e.to_string();
            text.contains("error sending request") || text.contains("timed out")
        }
        // 000603: SQL execution internal error; 000625, 000630: lock waits and
        // statement queues Snowflake gave up on; 261000: the request failed with an
        // HTTP error status (the code the Go and Python drivers give it). Decided by
        // the code alone: a statement refused for what it says fails the same way
        // every time, whatever words ("conflict", "timeout") its message uses.
        SnowflakeApiError::ApiError(code, _) => {
            matches!(code.as_str(), "000603" | "000625" | "000630" | "261000")
        }
        _ => false,
    }
}

/// The Snowflake error code and message, where the error carries them.
fn code_and_message(error: &SnowflakeApiError) -> Option<(String, String)> {
    match error {
        SnowflakeApiError::ApiError(code, message) => Some((code.clone(), message.clone())),
        // "Failed to authenticate. Error code: 390100. Message: Incorrect username or password was specified."
        SnowflakeApiError::AuthError(e) => {
            let text = e.to_string();
            let rest = text.split("Error code: ").nth(1)?;
            let (code, message) = rest.split_once(". Message: ")?;
            Some((code.to_owned(), message.to_owned()))
        }
        _ => None,
    }
}

/// An error of the statement `sql`: one refused for want of a privilege (003001)
/// names the GRANT an administrator runs; the rest as [`explain`] says.
pub fn explain_statement(
    options: &SnowflakeOptions,
    what: &str,
    sql: &str,
    error: SnowflakeApiError,
) -> DestinationError {
    if code_and_message(&error).is_none_or(|(code, _)| code != "003001") {
        return explain(options, what, error);
    }
    let role = options
        .role
        .as_deref()
        .map_or_else(|| "<the loader's role>".to_owned(), SnowflakeSql::ident);
    let remedy = match sql::needed_privilege(sql, &options.database, &options.schema) {
        Some(privilege) => format!(
            "An administrator grants it with: GRANT {privilege} TO ROLE {role}; \
             (config/snowflake/provision.sql grants the loader's role all that load needs{}).",
            if privilege.starts_with("CREATE SCHEMA") {
                ", with the schema created beforehand, so that load never creates it"
            } else {
                ""
            }
        ),
        None => format!(
            "The dataset's tables belong to another role; load's role must own them (it does \
             when load created them): GRANT OWNERSHIP ON ALL TABLES IN SCHEMA {}.{} TO ROLE \
             {role} COPY CURRENT GRANTS;",
            SnowflakeSql::ident(&options.database),
            SnowflakeSql::ident(&options.schema)
        ),
    };
    DestinationError::Forbidden {
        role,
        what: what.to_owned(),
        remedy,
        source: error.into(),
    }
}

/// An error, with what to do about it when the cause is a setting.
pub fn explain(
    options: &SnowflakeOptions,
    what: &str,
    error: SnowflakeApiError,
) -> DestinationError {
    use snowflake_api::connection::ConnectionError;
    if let Some((code, message)) = code_and_message(&error) {
        let lower = message.to_lowercase();
        // "Statement '…' has locked table 'T' in transaction 17… and this lock has not
        // yet been released. Your statement '…' was aborted because …"
        if code == "000625" || lower.contains("has locked table") {
            let holder = message
                .split("in transaction ")
                .nth(1)
                .map(|rest| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .filter(|id| !id.is_empty())
                .map(|id| format!(" (transaction {id})"))
                .unwrap_or_default();
            return DestinationError::TableLocked {
                table: what.to_owned(),
                holder,
                source: error.into(),
            };
        }
        let setting = match code.as_str() {
            "390100" | "390422" => Some(format!(
                "{}, {} or {}",
                env::USER,
                env::PASSWORD,
                env::PRIVATE_KEY_PATH
            )),
            "390144" | "394304" => Some(env::PRIVATE_KEY_PATH.to_owned()),
            "390189" => Some(env::ROLE.to_owned()),
            "000606" => Some(format!(
                "{} (or resume the warehouse: ALTER WAREHOUSE … RESUME)",
                env::WAREHOUSE
            )),
            "003001" | "003041" => Some(format!(
                "{} (or grant the role privileges on the database)",
                env::ROLE
            )),
            _ if lower.contains("warehouse")
                && (lower.contains("does not exist") || lower.contains("suspended")) =>
            {
                Some(env::WAREHOUSE.to_owned())
            }
            _ if lower.contains("database") && lower.contains("does not exist") => {
                Some(env::DATABASE.to_owned())
            }
            _ => None,
        };
        if let Some(setting) = setting {
            return DestinationError::Rejected {
                setting,
                source: error.into(),
            };
        }
    }
    let retriable = is_transient(&error);
    match error {
        SnowflakeApiError::RequestError(ConnectionError::Deserialization(_)) => {
            DestinationError::Rejected {
                setting: format!(
                    "{} (the account identifier) or SNOWFLAKE_URL: {} did not answer like Snowflake",
                    env::ACCOUNT,
                    endpoint(options)
                ),
                source: error.into(),
            }
        }
        // Passing failures of the request itself: the endpoint is out of reach.
        SnowflakeApiError::RequestError(_) | SnowflakeApiError::AuthError(_) if retriable => {
            DestinationError::Unreachable {
                url: endpoint(options),
                source: error.into(),
            }
        }
        error => DestinationError::Write {
            table: what.to_owned(),
            retriable,
            source: error.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_endpoint_with_their_path_and_query() {
        let mut url: reqwest::Url =
            "https://xy12345.snowflakecomputing.com/queries/v1/query-request?requestId=7"
                .parse()
                .unwrap();
        redirect(&mut url, &"http://127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/queries/v1/query-request?requestId=7"
        );
        let mut url: reqwest::Url = "https://a.snowflakecomputing.com/session/v1/login-request"
            .parse()
            .unwrap();
        redirect(
            &mut url,
            &"https://proxy.example/snowflake/".parse().unwrap(),
        );
        assert_eq!(
            url.as_str(),
            "https://proxy.example/snowflake/session/v1/login-request"
        );
    }

    #[test]
    fn reads_the_count_of_changed_rows() {
        let result = QueryResult::Json(snowflake_api::JsonResult {
            value: serde_json::json!([["1", "0"]]),
            schema: Vec::new(),
        });
        assert_eq!(changed_rows(&result), 1);
        assert_eq!(changed_rows(&QueryResult::Empty), 0);
    }

    fn options() -> SnowflakeOptions {
        SnowflakeOptions::new(
            "xy12345".into(),
            "loader".into(),
            SnowflakeAuth::Password("secret".into()),
            "IOT".into(),
        )
    }

    #[test]
    fn names_the_setting_behind_a_refusal() {
        let options = options();
        let refused = |code: &str, message: &str| {
            explain(
                &options,
                "x",
                SnowflakeApiError::ApiError(code.into(), message.into()),
            )
            .to_string()
        };
        assert!(
            refused("390100", "Incorrect username or password was specified.")
                .contains(env::PASSWORD)
        );
        assert!(
            refused(
                "390189",
                "Role 'X' specified in the connect string does not exist or not authorized."
            )
            .contains(env::ROLE)
        );
        assert!(
            refused(
                "000606",
                "No active warehouse selected in the current session."
            )
            .contains(env::WAREHOUSE)
        );
        assert!(
            refused(
                "002003",
                "Database 'NOPE' does not exist or not authorized."
            )
            .contains(env::DATABASE)
        );
        assert!(
            !refused("390100", "Incorrect username or password was specified.").contains("secret")
        );
        assert!(matches!(
            explain(
                &options,
                "x",
                SnowflakeApiError::ApiError("001003".into(), "syntax error".into())
            ),
            DestinationError::Write { .. }
        ));
    }

    #[test]
    fn a_lock_held_by_another_transaction_names_it_and_how_to_end_it() {
        let options = options();
        let error = explain(
            &options,
            "_commit_turn",
            SnowflakeApiError::ApiError(
                "000625".into(),
                "Statement '01bb1644-0513' has locked table '_COMMIT_TURN' in transaction \
                 1742288905053000000 and this lock has not yet been released. Your statement \
                 '01bb1644-0514' was aborted because the lock timeout was exceeded."
                    .into(),
            ),
        );
        let message = error.to_string();
        assert!(
            matches!(error, DestinationError::TableLocked { .. }),
            "{error:?}"
        );
        assert!(message.contains("_commit_turn"), "{message}");
        assert!(
            message.contains("transaction 1742288905053000000"),
            "{message}"
        );
        assert!(message.contains("SYSTEM$ABORT_TRANSACTION"), "{message}");
        assert!(iot_runtime::Retriable::is_retriable(&error));
    }

    #[test]
    fn a_refused_statement_is_not_retried_whatever_its_message_says() {
        let refused = SnowflakeApiError::ApiError(
            "100072".into(),
            "NULL result in a non-nullable column: conflict with the table's definition".into(),
        );
        assert!(!is_transient(&refused));
        let internal = SnowflakeApiError::ApiError("000603".into(), "internal error".into());
        assert!(is_transient(&internal));
    }
}
