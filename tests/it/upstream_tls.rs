//! A provider over TLS: `https://localhost` served by a TLS front the test runs, with a
//! certificate from the test's CA (trusted through `SSL_CERT_FILE`, which is how the system's
//! roots are read on Linux), offering HTTP/2 and HTTP/1.1 by ALPN and handing each request on
//! to the mock. Needs `openssl`, as `state_tls` does.

use std::sync::{Arc, Mutex};

use axum::http::header::{CONTENT_TYPE, HOST};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

use crate::state_tls::Pki;
use crate::support::{Gateway, KEY, Mock, home_with, http, izzi_bin};

/// The front's address and the protocol each connection negotiated.
struct Front {
    url: String,
    protocols: Arc<Mutex<Vec<String>>>,
}

async fn front(pki: &Pki, mock: &str) -> Front {
    let certs = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).expect("server.key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let protocols = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&protocols);
    let (mock, client) = (mock.to_owned(), http());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
            let (mock, client) = (mock.clone(), client.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default();
                let h2 = alpn == b"h2";
                seen.lock()
                    .expect("protocols")
                    .push(String::from_utf8_lossy(alpn).into_owned());
                let service = hyper::service::service_fn(move |request| {
                    forward(client.clone(), mock.clone(), request)
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    Front {
        url: format!("https://localhost:{port}"),
        protocols,
    }
}

/// One request handed to the mock, its answer back whole.
async fn forward(
    client: reqwest::Client,
    mock: String,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut headers = parts.headers;
    headers.remove(HOST);
    let answer = client
        .post(format!("{mock}{}", parts.uri.path()))
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("the mock answers");
    let status = answer.status();
    let content_type = answer.headers().get(CONTENT_TYPE).cloned();
    let mut response = Response::new(Full::new(answer.bytes().await.expect("the mock's body")));
    *response.status_mut() = status;
    if let Some(value) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    Ok(response)
}

#[tokio::test]
async fn a_tls_provider_is_reached_over_http2_trusting_the_systems_roots() {
    let pki = Pki::new();
    let mock = Mock::start();
    let front = front(&pki, &mock.url).await;
    let config = format!(
        r#"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{}"
api_key = "sk-upstream-anthropic"

[[keys]]
name = "test"
key = "{KEY}"
"#,
        front.url
    );
    let start = |roots: &std::path::Path| {
        let mut command = std::process::Command::new(izzi_bin());
        command.env("SSL_CERT_FILE", roots);
        Gateway::spawn(command, home_with(&config), &[], "izzi=debug,info")
    };
    let body = |stream: bool| {
        json!({"model": "sonnet", "max_tokens": 20, "stream": stream,
               "messages": [{"role": "user", "content": "hi"}]})
    };
    let gw = start(&pki.path("ca.pem"));
    let r = gw.post("/v1/messages", KEY, &body(false)).await;
    assert_eq!(r.status(), 200, "{}", gw.log());
    let text = gw
        .post("/v1/messages", KEY, &body(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("message_stop"), "{text}");
    // Both over one pooled HTTP/2 connection, the provider's key on each.
    assert_eq!(*front.protocols.lock().unwrap(), ["h2"]);
    let seen = mock.requests().await;
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|r| r["headers"]["x-api-key"] == "sk-upstream-anthropic"),
        "{seen:?}"
    );
    // Roots that do not hold the test's CA: the certificate is refused, a TLS failure.
    let untrusted = pki.path("server.pem");
    let gw = start(&untrusted);
    let r = gw.post("/v1/messages", KEY, &body(false)).await;
    assert_eq!(r.status(), 502);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["error"]["type"], "connection_error", "{answer}");
    assert_eq!(mock.requests().await.len(), 2);
}
