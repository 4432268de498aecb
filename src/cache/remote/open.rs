//! Building the object store for a `[cache] remote` URL, and what its errors
//! mean for a person.
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};

/// Connecting may take this long before the remote counts as down.
const CONNECT_TIMEOUT: &str = "2s";
/// One whole request, body included (a 1080p60 scene is tens of MB).
const REQUEST_TIMEOUT: &str = "120s";

/// Two quick retries: a cache must not make a build wait for a dead server.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    }
}

/// The store for `url`: S3, GCS and Azure with credentials from each cloud's
/// usual environment variables; HTTP(S) as WebDAV. A path after the bucket
/// (or host) becomes a prefix.
pub fn store(url: &str) -> Result<Arc<dyn ObjectStore>, String> {
    // reqwest needs a TLS provider before the first client is built; an
    // error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let prefix = parsed.path().trim_matches('/').to_string();
    let base = |scheme: &str| -> Result<String, String> {
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no bucket or host")?;
        Ok(match parsed.port() {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        })
    };
    let client = |key, value: &str| (key, value.to_string());
    let timeouts = [
        client(ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
        client(ClientConfigKey::Timeout, REQUEST_TIMEOUT),
    ];
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(base("s3")?)
                .with_retry(retry());
            for (k, v) in aws_shared_config(&|k| std::env::var(k).ok()) {
                b = b.with_config(k, v);
            }
            for (k, v) in timeouts {
                b = b.with_config(AmazonS3ConfigKey::Client(k), v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(base("gs")?)
                .with_retry(retry());
            for (k, v) in timeouts {
                b = b.with_config(GoogleConfigKey::Client(k), v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry());
            for (k, v) in timeouts {
                b = b.with_config(AzureConfigKey::Client(k), v);
            }
            // Azure's URL forms carry the container in different places
            // (`az://container/…`, `abfs://container@account…/…`): the
            // builder takes it from the whole URL; the path is the prefix.
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "http" | "https" => {
            // At the server's root, with the path as a prefix: an HTTP store
            // whose URL has a path lists keys with that path in front.
            // `with_client_options` replaces every client option: first.
            let mut b = HttpBuilder::new()
                .with_client_options(ClientOptions::new().with_allow_http(true))
                .with_url(base(parsed.scheme())?)
                .with_retry(retry());
            for (k, v) in timeouts {
                b = b.with_config(k, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unsupported scheme `{other}:`")),
    };
    Ok(with_prefix(store, prefix))
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: String) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix.as_str()))
    }
}

/// What the AWS CLI's files say (`~/.aws/credentials` and `~/.aws/config`,
/// or `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`; the profile in
/// `AWS_PROFILE`, else `default`), for what the environment leaves unset:
/// object_store reads only the environment.
fn aws_shared_config(env: &dyn Fn(&str) -> Option<String>) -> Vec<(AmazonS3ConfigKey, String)> {
    let home = env("HOME").unwrap_or_default();
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let read = |var: &str, default: &str| {
        let path = env(var).unwrap_or_else(|| format!("{home}/.aws/{default}"));
        std::fs::read_to_string(path).unwrap_or_default()
    };
    let credentials = ini_section(
        &read("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        &profile,
    );
    let config_section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    let config = ini_section(&read("AWS_CONFIG_FILE", "config"), &config_section);
    let mut out = Vec::new();
    let mut take = |env_name: &str, found: Option<&String>, key: AmazonS3ConfigKey| {
        if env(env_name).is_none()
            && let Some(v) = found
        {
            out.push((key, v.clone()));
        }
    };
    if env("AWS_ACCESS_KEY_ID").is_none() {
        take(
            "AWS_ACCESS_KEY_ID",
            credentials.get("aws_access_key_id"),
            AmazonS3ConfigKey::AccessKeyId,
        );
        take(
            "AWS_SECRET_ACCESS_KEY",
            credentials.get("aws_secret_access_key"),
            AmazonS3ConfigKey::SecretAccessKey,
        );
        take(
            "AWS_SESSION_TOKEN",
            credentials.get("aws_session_token"),
            AmazonS3ConfigKey::Token,
        );
    }
    take(
        "AWS_REGION",
        config.get("region"),
        AmazonS3ConfigKey::Region,
    );
    take(
        "AWS_ENDPOINT_URL",
        config.get("endpoint_url"),
        AmazonS3ConfigKey::Endpoint,
    );
    out
}

/// The `key = value` lines of `[section]` in an INI text.
fn ini_section(text: &str, section: &str) -> std::collections::HashMap<String, String> {
    let mut inside = false;
    let mut found = std::collections::HashMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            found.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    found
}

/// The transport failure inside `e`, if it is one.
fn http_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            return Some(h.kind());
        }
        source = s.source();
    }
    None
}

/// What went wrong, in a few words.
pub fn explain(e: &object_store::Error) -> String {
    use object_store::Error as E;
    match e {
        E::Unauthenticated { .. } | E::PermissionDenied { .. } => {
            "the server refused the credentials".into()
        }
        _ if http_kind(e) == Some(HttpErrorKind::Connect) => "cannot connect".into(),
        _ if http_kind(e) == Some(HttpErrorKind::Timeout) => "timed out".into(),
        _ => {
            let text = e.to_string();
            if text.contains("403") || text.contains("SignatureDoesNotMatch") {
                return "the server refused the credentials".into();
            }
            let mut short: String = text.chars().take(200).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            short
        }
    }
}

/// How to fix it.
pub fn fix(e: &object_store::Error) -> String {
    if explain(e).contains("credentials") {
        "check the store's credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (S3), GOOGLE_APPLICATION_CREDENTIALS (GCS), AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (Azure)".into()
    } else {
        "check `[cache] remote` in parender.toml and that the server is up (S3 endpoints other than AWS: AWS_ENDPOINT_URL, and AWS_ALLOW_HTTP=true for http)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_cli_files_fill_what_the_environment_leaves_unset() {
        let t = tempfile::tempdir().unwrap();
        let creds = t.path().join("credentials");
        let config = t.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKD\naws_secret_access_key = SKD\n[team]\naws_access_key_id=AKT\naws_secret_access_key=SKT\n",
        )
        .unwrap();
        std::fs::write(&config, "[profile team]\nregion = eu-west-1\n").unwrap();
        let vars = |profile: Option<&'static str>, region: Option<&'static str>| {
            let (creds, config) = (creds.clone(), config.clone());
            move |k: &str| match k {
                "AWS_SHARED_CREDENTIALS_FILE" => Some(creds.display().to_string()),
                "AWS_CONFIG_FILE" => Some(config.display().to_string()),
                "AWS_PROFILE" => profile.map(String::from),
                "AWS_REGION" => region.map(String::from),
                _ => None,
            }
        };
        let got = aws_shared_config(&vars(Some("team"), None));
        let get = |k: AmazonS3ConfigKey| got.iter().find(|(g, _)| *g == k).map(|(_, v)| v.as_str());
        assert_eq!(get(AmazonS3ConfigKey::AccessKeyId), Some("AKT"));
        assert_eq!(get(AmazonS3ConfigKey::SecretAccessKey), Some("SKT"));
        assert_eq!(get(AmazonS3ConfigKey::Region), Some("eu-west-1"));
        // The environment wins.
        let got = aws_shared_config(&vars(None, Some("us-east-2")));
        assert!(
            got.iter()
                .any(|(k, v)| *k == AmazonS3ConfigKey::AccessKeyId && v == "AKD")
        );
        assert!(!got.iter().any(|(k, _)| *k == AmazonS3ConfigKey::Region));
    }
}
