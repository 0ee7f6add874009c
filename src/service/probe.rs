//! What answers on an address: an izzi gateway (its `/health`: version, pid, uptime, config), or
//! another program holding the port. Used by `izzi service` and by a second `izzi serve`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A gateway's `GET /health`, the fields `izzi service` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Health {
    pub(crate) status: String,
    pub(crate) version: String,
    pub(crate) pid: u32,
    pub(crate) uptime_s: u64,
    pub(crate) config: ConfigState,
}

/// `/health`'s `config`: the file in use and how its reloads went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConfigState {
    pub(crate) path: Option<PathBuf>,
    pub(crate) reloads: u64,
    pub(crate) error: Option<String>,
}

/// An address a client can reach for `host`: loopback for an unspecified one (`0.0.0.0`).
pub(crate) fn reachable(host: IpAddr) -> IpAddr {
    match host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The izzi gateway answering on `addr`, if one does within two seconds.
pub(crate) async fn health(addr: SocketAddr) -> Option<Health> {
    let addr = SocketAddr::new(reachable(addr.ip()), addr.port());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// Why `addr` cannot be listened on, naming what holds it.
pub(crate) async fn holder(addr: SocketAddr) -> String {
    let hint = "stop it, or choose another port with `--port N` or `server.port`";
    if let Some(health) = health(addr).await {
        return format!(
            "izzi {}, pid {}, already serves on {addr}; {hint} (`izzi service stop` stops the service)",
            health.version, health.pid
        );
    }
    let port = addr.port();
    let program = tokio::task::spawn_blocking(move || listener(port))
        .await
        .ok()
        .flatten();
    match program {
        Some((pid, name)) => {
            format!("{addr} is already in use by `{name}` (pid {pid}); {hint}")
        }
        None => format!("{addr} is already in use by another program; {hint}"),
    }
}

/// The process listening on TCP `port`, where the system says (Linux: the socket's inode in
/// `/proc/net/tcp*`, then the process holding it; only processes of this user are visible).
#[cfg(target_os = "linux")]
fn listener(port: u16) -> Option<(u32, String)> {
    const LISTEN: &str = "0A";
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = fs_err::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1)?.rsplit(':').next()?;
                let listening = fields.get(3) == Some(&LISTEN);
                (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                    .then(|| fields.get(9).map(|i| format!("socket:[{i}]")))
                    .flatten()
            })
        })?;
    fs_err::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let holds = fs_err::read_dir(entry.path().join("fd"))
            .ok()?
            .flatten()
            .any(|fd| fs_err::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == inode.as_str()));
        let name = fs_err::read_to_string(entry.path().join("comm")).ok()?;
        holds.then(|| (pid, name.trim_end().to_owned()))
    })
}

#[cfg(not(target_os = "linux"))]
fn listener(_port: u16) -> Option<(u32, String)> {
    None
}
