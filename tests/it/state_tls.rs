//! TLS to the shared state: a real PostgreSQL started with `ssl=on` that accepts only TLS
//! connections (`hostssl` in pg_hba.conf), and a real `redis-server --tls-port`, both with a
//! certificate for `localhost` from a CA the test makes with `openssl`. `sslmode=verify-full`
//! passes with the CA (`postgres_ca_file`) and is refused without it (the system's roots do not
//! know the test's CA); `verify-ca` takes a certificate for another name, `verify-full` does not;
//! `disable` is refused by the server. `rediss://` works with `redis_ca_file` and not without.
//!
//! Needs `openssl` besides what `shared_state` needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::ledger::izzi;
use crate::shared_state::{Postgres, Redis, is_root};
use crate::support::{Gateway, KEY, Mock, mock_config};

/// A CA and a server certificate for `localhost` (and no other name) signed by it.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("pki dir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            dir.path(),
            &["req", "-x509"],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=izzi test CA",
            ],
        );
        openssl(
            dir.path(),
            &["req"],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
            ],
            &["-CAcreateserial", "-days", "2", "-extfile", "server.ext"],
            &["-out", "server.pem"],
        );
        Self { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let out = Command::new("openssl")
        .args(a)
        .args(b)
        .args(c)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl {a:?} failed: {out:?}");
}

/// A PostgreSQL that speaks TLS with the test's certificate and refuses plain TCP.
fn postgres_with_tls(pki: &Pki) -> Postgres {
    let mut pg = Postgres::init();
    let (cert, key) = (
        pg.dir.path().join("server.pem"),
        pg.dir.path().join("server.key"),
    );
    std::fs::copy(pki.path("server.pem"), &cert).expect("copy cert");
    std::fs::copy(pki.path("server.key"), &key).expect("copy key");
    let mut chmod = Command::new("chmod");
    chmod.arg("600").arg(&key);
    assert!(chmod.status().expect("chmod").success());
    if is_root() {
        let status = Command::new("chown")
            .arg("nobody:nogroup")
            .arg(&cert)
            .arg(&key)
            .status()
            .expect("chown");
        assert!(status.success());
    }
    std::fs::write(
        pg.dir.path().join("data").join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .expect("write pg_hba.conf");
    pg.args = vec![
        "-c".into(),
        "ssl=on".into(),
        "-c".into(),
        format!("ssl_cert_file={}", cert.display()),
        "-c".into(),
        format!("ssl_key_file={}", key.display()),
    ];
    pg.spawn();
    // The port opens before the server takes connections.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !Postgres::command("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .status()
        .expect("run pg_isready")
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "postgres did not get ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pg
}

/// `izzi keys create` then `izzi keys list` against PostgreSQL at `url`; the exit code and
/// stderr of the first command that failed, or (0, "").
fn keys_over(home: &Path, url: &str, ca_file: Option<&Path>, name: &str) -> (i32, String) {
    let mut state = format!("[state]\npostgres_url = \"{url}\"\n");
    if let Some(ca) = ca_file {
        state.push_str(&format!("postgres_ca_file = \"{}\"\n", ca.display()));
    }
    let config = home.join(format!("{name}.toml"));
    std::fs::write(&config, state).expect("write config");
    let config = config.to_str().expect("UTF-8 path");
    let (_, stderr, code) = izzi(
        home,
        &["keys", "create", "--name", name, "--config", config],
    );
    if code != 0 {
        return (code, stderr);
    }
    let (stdout, stderr, code) = izzi(home, &["keys", "list", "--json", "--config", config]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("\"{name}\"")), "{stdout}");
    (0, String::new())
}

#[test]
fn postgres_sslmodes_against_a_server_that_takes_only_tls() {
    let pki = Pki::new();
    let pg = postgres_with_tls(&pki);
    let home = tempfile::tempdir().expect("home");
    let ca = pki.path("ca.pem");
    // `localhost` is the certificate's name; `hostaddr` makes it reach the IPv4 listener.
    let by_name = |mode: &str| {
        format!(
            "postgres://izzi@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}",
            pg.port
        )
    };
    let by_ip = |mode: &str| {
        format!(
            "postgres://izzi@127.0.0.1:{}/postgres?sslmode={mode}",
            pg.port
        )
    };

    // verify-full with the CA: the chain and the name check out.
    assert_eq!(
        keys_over(home.path(), &by_name("verify-full"), Some(&ca), "full"),
        (0, String::new())
    );
    // Without the CA the system's roots do not know the issuer.
    let (code, stderr) = keys_over(home.path(), &by_name("verify-full"), None, "noca");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    // Reached as 127.0.0.1, the certificate's name does not match: verify-ca takes it, verify-full
    // does not.
    assert_eq!(
        keys_over(home.path(), &by_ip("verify-ca"), Some(&ca), "ca"),
        (0, String::new())
    );
    let (code, stderr) = keys_over(home.path(), &by_ip("verify-full"), Some(&ca), "name");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not valid for name"), "{stderr}");
    // require encrypts without checking; with the CA it checks the chain (libpq's rule).
    assert_eq!(
        keys_over(home.path(), &by_ip("require"), None, "req"),
        (0, String::new())
    );
    assert_eq!(
        keys_over(home.path(), &by_ip("require"), Some(&ca), "reqca"),
        (0, String::new())
    );
    // No sslmode on loopback is `prefer`: TLS when the server has it.
    let plain = format!("postgres://izzi@127.0.0.1:{}/postgres", pg.port);
    assert_eq!(
        keys_over(home.path(), &plain, None, "prefer"),
        (0, String::new())
    );
    // disable sends no TLS, and this server takes none.
    let (code, stderr) = keys_over(home.path(), &by_ip("disable"), None, "off");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no encryption"), "{stderr}");
}

#[test]
fn postgres_require_with_another_ca_is_refused() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let pg = postgres_with_tls(&pki);
    let home = tempfile::tempdir().expect("home");
    let url = format!(
        "postgres://izzi@127.0.0.1:{}/postgres?sslmode=require",
        pg.port
    );
    let (code, stderr) = keys_over(home.path(), &url, Some(&stranger.path("ca.pem")), "x");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("UnknownIssuer") || stderr.contains("BadSignature"),
        "{stderr}"
    );
}

fn tls_listen(port: u16) -> Vec<String> {
    // The certificate files are in the directory the test sets as the working directory.
    [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        "server.pem",
        "--tls-key-file",
        "server.key",
        "--tls-ca-cert-file",
        "ca.pem",
        "--tls-auth-clients",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[tokio::test]
async fn rediss_with_the_ca_admits_and_without_it_fails_closed() {
    let pki = Pki::new();
    let redis = Redis::start_in(pki.dir.path(), tls_listen);
    let mock = Mock::start();
    let url = format!("rediss://localhost:{}", redis.port);
    let body = json!({"model": "sonnet", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});

    let with_ca = format!(
        "{}\n[state]\nredis_url = \"{url}\"\nredis_ca_file = \"{}\"\non_unavailable = \"closed\"\n",
        mock_config(&mock, ""),
        pki.path("ca.pem").display()
    );
    let gw = Gateway::start(&with_ca);
    let response = gw.post("/v1/messages", KEY, &body).await;
    assert_eq!(response.status(), 200, "{}", gw.log());

    let without = format!(
        "{}\n[state]\nredis_url = \"{url}\"\non_unavailable = \"closed\"\n",
        mock_config(&mock, "")
    );
    let gw = Gateway::start(&without);
    let response = gw.post("/v1/messages", KEY, &body).await;
    assert_eq!(response.status(), 503);
    let log = gw.log();
    assert!(log.contains("cannot be reached"), "{log}");
}
