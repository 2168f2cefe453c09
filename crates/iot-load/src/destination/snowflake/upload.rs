//! Staged files reach Snowflake as its own clients send them: `PUT` asks Snowflake
//! where the stage keeps its files, and the client uploads each file there itself,
//! to the cloud storage behind the account.
//!
//! The `snowflake-api` client uploads to S3-backed stages only, from local files,
//! without the metadata Snowflake's clients attach. So `load` sends its `PUT`
//! statements as queries (a leading comment keeps the client from taking them for
//! its own PUT) and this middleware, which sees every request of the session,
//! uploads the file the statement names from memory when Snowflake's answer
//! arrives, then answers the query with the file's name and status:
//!
//! - GCS: to the presigned URL in the answer, or with the access token to
//!   `storage.googleapis.com` (Snowflake gives one or the other);
//! - S3: signed with the temporary credentials in the answer (object_store);
//! - Azure: a Put Blob with the SAS token in the answer.
//!
//! The stage is created with server-side encryption only (`SNOWFLAKE_SSE`), so
//! Snowflake asks for no client-side encryption; an answer that does is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::Extensions;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use reqwest_middleware::{Middleware, Next};
use serde::Deserialize;
use serde_json::json;

/// What marks a statement as one of `load`'s uploads.
pub const MARK: &str = "-- iot-streaming load: upload\n";

/// Files waiting for their `PUT`, by the local path the statement names.
#[derive(Clone, Default)]
pub struct Pending(Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl Pending {
    /// Holds `bytes` for the `PUT` of `path`.
    pub fn add(&self, path: &str, bytes: Vec<u8>) {
        self.lock().insert(path.to_owned(), bytes);
    }

    /// Takes the file held for `path`: the upload's, or the holder's once its `PUT`
    /// is over, whatever became of it (a file is held no longer than its `PUT`).
    pub fn take(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().remove(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic elsewhere while holding it leaves a map that is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `PUT` statement uploading the file held for `path` to `target` (a stage
/// and folder, `@"S"."_LOAD_STAGE"/run/attempt/table/`).
pub fn put(path: &str, target: &str) -> String {
    format!("{MARK}PUT 'file://{path}' {target} AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
}

/// The local path a `PUT` statement names.
fn put_path(sql: &str) -> Option<&str> {
    let rest = sql.strip_prefix(MARK)?.split("'file://").nth(1)?;
    rest.split('\'').next()
}

/// The middleware: see the module's comment.
pub struct Uploads {
    pub pending: Pending,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct QueryRequest {
    #[serde(rename = "sqlText")]
    sql_text: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StageInfo {
    location_type: String,
    location: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    end_point: Option<String>,
    #[serde(default)]
    storage_account: Option<String>,
    #[serde(default)]
    presigned_url: Option<String>,
    #[serde(default)]
    creds: HashMap<String, String>,
}

#[async_trait::async_trait]
impl Middleware for Uploads {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let path = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .and_then(|body| serde_json::from_slice::<QueryRequest>(body).ok())
            .and_then(|q| put_path(&q.sql_text).map(str::to_owned));
        let Some(path) = path else {
            return next.run(request, extensions).await;
        };
        let response = next.run(request, extensions).await?;
        let status = response.status();
        let body = response.bytes().await?;
        let answer: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(answer) => answer,
            Err(_) => return Ok(rebuilt(status, body.to_vec())),
        };
        if answer["success"] != json!(true) {
            return Ok(rebuilt(status, body.to_vec()));
        }
        let file = path.rsplit('/').next().unwrap_or(&path).to_owned();
        let outcome = match self.pending.take(&path) {
            None => Err(format!("no file is held for {path}")),
            Some(bytes) => self.upload(&answer["data"], &file, bytes).await,
        };
        let reply = match outcome {
            Ok(()) => json!({
                "success": true, "code": null, "message": null,
                "data": {
                    "parameters": [], "rowtype": [], "rowset": [], "total": 0, "returned": 0,
                    "queryId": answer["data"]["queryId"].as_str().unwrap_or(""),
                    "finalRoleName": answer["data"]["finalRoleName"].as_str().unwrap_or(""),
                    "statementTypeId": answer["data"]["statementTypeId"].as_i64().unwrap_or(0),
                    "version": 1,
                }
            }),
            // A failed upload is answered as Snowflake answers a request that failed
            // on its way (261000: retried with the whole batch).
            Err(reason) => json!({
                "success": false, "code": "261000",
                "message": format!("uploading {file} to the stage failed: {reason}"),
                "data": {
                    "errorCode": "261000", "sqlState": "08000", "age": 0,
                    "internalError": false, "queryId": "",
                }
            }),
        };
        Ok(rebuilt(
            http::StatusCode::OK,
            reply.to_string().into_bytes(),
        ))
    }
}

impl Uploads {
    async fn upload(
        &self,
        data: &serde_json::Value,
        file: &str,
        bytes: Vec<u8>,
    ) -> Result<(), String> {
        if !data["encryptionMaterial"].is_null() {
            return Err(
                "the stage asks for client-side encryption; load creates its stage with \
                 ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE'): drop the stage and run load again"
                    .into(),
            );
        }
        let stage: StageInfo = serde_json::from_value(data["stageInfo"].clone())
            .map_err(|e| format!("unexpected stage information: {e}"))?;
        let (container, prefix) = split_location(&stage.location);
        let key = format!("{prefix}{file}");
        match stage.location_type.to_uppercase().as_str() {
            "GCS" => {
                let request = match (&stage.presigned_url, stage.creds.get("GCS_ACCESS_TOKEN")) {
                    (Some(url), _) if !url.is_empty() => self.http.put(url),
                    (_, Some(token)) => self
                        .http
                        .put(format!(
                            "https://storage.googleapis.com/{container}/{}",
                            encode_path(&key)
                        ))
                        .bearer_auth(token),
                    _ => return Err("the answer has neither a presigned URL nor a token".into()),
                };
                send(request.body(bytes)).await
            }
            "AZURE" => {
                let account = stage.storage_account.as_deref().unwrap_or_default();
                let sas = stage
                    .creds
                    .get("AZURE_SAS_TOKEN")
                    .map_or("", String::as_str);
                let host = stage
                    .end_point
                    .as_deref()
                    .unwrap_or("blob.core.windows.net");
                let url = format!(
                    "https://{account}.{host}/{container}/{}?{}",
                    encode_path(&key),
                    sas.trim_start_matches('?')
                );
                send(
                    self.http
                        .put(url)
                        .header("x-ms-blob-type", "BlockBlob")
                        .body(bytes),
                )
                .await
            }
            "S3" => {
                let cred = |name: &str| stage.creds.get(name).cloned().unwrap_or_default();
                let mut s3 = AmazonS3Builder::new()
                    .with_bucket_name(container)
                    .with_region(stage.region.clone().unwrap_or_default())
                    .with_access_key_id(cred("AWS_KEY_ID"))
                    .with_secret_access_key(cred("AWS_SECRET_KEY"))
                    .with_token(cred("AWS_TOKEN"));
                if let Some(end_point) = stage.end_point.as_deref().filter(|e| !e.is_empty()) {
                    s3 = s3
                        .with_endpoint(format!("https://{container}.{end_point}"))
                        .with_virtual_hosted_style_request(true);
                }
                let s3 = s3.build().map_err(|e| e.to_string())?;
                s3.put(&object_store::path::Path::from(key), bytes.into())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            other => Err(format!("stages on {other} storage are not supported")),
        }
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(format!(
        "{status}: {}",
        text.chars().take(300).collect::<String>()
    ))
}

/// `bucket/path/` as the bucket (or container) and the path, ending in `/` if any.
fn split_location(location: &str) -> (&str, String) {
    match location.split_once('/') {
        Some((container, path)) if !path.is_empty() => {
            (container, format!("{}/", path.trim_end_matches('/')))
        }
        Some((container, _)) => (container, String::new()),
        None => (location, String::new()),
    }
}

/// A path with each segment percent-encoded (the names here are plain, but the
/// stage's own prefix is Snowflake's to choose).
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    b => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn rebuilt(status: http::StatusCode, body: Vec<u8>) -> reqwest::Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reqwest::Response::from(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_names_its_file_and_is_not_taken_for_the_clients_own() {
        let sql = put(
            "/iot-load/0f/gps_data.parquet",
            "@\"S\".\"_LOAD_STAGE\"/a/b/",
        );
        assert_eq!(put_path(&sql), Some("/iot-load/0f/gps_data.parquet"));
        assert!(sql.starts_with("--"), "{sql}");
        assert_eq!(put_path("PUT 'file:///x' @s"), None, "only load's own");
    }

    #[test]
    fn locations_split_into_container_and_prefix() {
        assert_eq!(
            split_location("bucket/stages/abc"),
            ("bucket", "stages/abc/".to_owned())
        );
        assert_eq!(split_location("bucket/"), ("bucket", String::new()));
        assert_eq!(split_location("bucket"), ("bucket", String::new()));
        assert_eq!(encode_path("a b/c+d.parquet"), "a%20b/c%2Bd.parquet");
    }
}
