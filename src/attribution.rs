//! Who sent a request, as far as its headers tell: the client tool (from `User-Agent` and the
//! headers only some tools send), the agent session and an optional project. The ledger records
//! them, `izzi usage --by tool|session` sums by them, routing rules match the tool, and the
//! session keeps a conversation on one provider and its prompt cache warm.
//!
//! Never the prompt or the answer: only what the client put in its headers, bounded and printable.

use axum::http::{HeaderMap, HeaderName, header};

use crate::wire::wire_enum;

wire_enum! {
    stored
    /// The client tool that sent a request.
    Tool {
        /// Anthropic's Claude Code (`claude-cli/…`).
        ClaudeCode = "claude-code",
        /// OpenAI's Codex CLI (`codex_cli_rs/…`, `originator: codex_…`).
        Codex = "codex",
        /// Cline, the CLI or the editor extension.
        Cline = "cline",
        /// Cursor.
        Cursor = "cursor",
        /// opencode.
        Opencode = "opencode",
        /// The Zed editor.
        Zed = "zed",
        /// An official OpenAI SDK used directly (`OpenAI/Python …`, `OpenAI/JS …`).
        OpenaiSdk = "openai-sdk",
        /// An official Anthropic SDK used directly (`Anthropic/Python …`, `Anthropic/JS …`).
        AnthropicSdk = "anthropic-sdk",
        /// Anything else, or no `User-Agent` at all.
        Other = "other",
    }
}

/// Longest session or project name kept; a longer one is not a session id but noise.
const MAX_NAME: usize = 128;

/// Headers that name the agent session, the explicit one first.
/// (Names built at compile time: a `&str` name is parsed and validated on every lookup.)
const SESSION_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-izzi-session"),
    HeaderName::from_static("x-claude-code-session-id"),
    HeaderName::from_static("session-id"),
    HeaderName::from_static("session_id"),
];
const PROJECT_HEADER: HeaderName = HeaderName::from_static("x-izzi-project");
/// Codex's `originator` header.
const ORIGINATOR: HeaderName = HeaderName::from_static("originator");

impl Tool {
    /// The tool behind a request's headers. The tools' own user agents decide first (a tool
    /// built on an SDK sends the SDK's `x-stainless-*` headers too), then the SDKs'.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let header = |name: &HeaderName| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
        };
        let agent = header(&header::USER_AGENT);
        if header(&ORIGINATOR).starts_with("codex") {
            return Self::Codex;
        }
        Self::from_user_agent(agent)
    }

    /// The tool a `User-Agent` names.
    pub(crate) fn from_user_agent(agent: &str) -> Self {
        let lower = agent.to_ascii_lowercase();
        let product = lower.split(['/', ' ']).next().unwrap_or_default();
        match product {
            "claude-cli" | "claude-code" => return Self::ClaudeCode,
            "codex_cli_rs" | "codex_exec" | "codex-cli" | "codex" => return Self::Codex,
            "zed" => return Self::Zed,
            "openai" => return Self::OpenaiSdk,
            "anthropic" => return Self::AnthropicSdk,
            _ => {}
        }
        [
            ("cline", Self::Cline),
            ("cursor", Self::Cursor),
            ("opencode", Self::Opencode),
        ]
        .into_iter()
        .find_map(|(name, tool)| lower.contains(name).then_some(tool))
        .unwrap_or(Self::Other)
    }
}

/// Who sent a request: recorded with its ledger row (rows written before izzi recorded it read
/// as the default: tool `other`, no session, no project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribution {
    pub(crate) tool: Tool,
    /// The agent session: `x-izzi-session`, else Claude Code's or Codex's session header.
    pub(crate) session: Option<String>,
    /// `x-izzi-project`, when the client sets it.
    pub(crate) project: Option<String>,
}

impl Default for Attribution {
    fn default() -> Self {
        Self {
            tool: Tool::Other,
            session: None,
            project: None,
        }
    }
}

impl Attribution {
    /// What a request's headers say of its sender.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        Self {
            tool: Tool::of(headers),
            session: SESSION_HEADERS
                .iter()
                .find_map(|name| name_in(headers, name)),
            project: name_in(headers, &PROJECT_HEADER),
        }
    }
}

/// A header's value when it is a usable name: printable ASCII without spaces, at most
/// [`MAX_NAME`] bytes.
fn name_in(headers: &HeaderMap, header: &HeaderName) -> Option<String> {
    let value = headers.get(header)?.to_str().ok()?.trim();
    let usable =
        !value.is_empty() && value.len() <= MAX_NAME && value.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    axum::http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn the_tools_are_told_apart_by_their_user_agents() {
        for (agent, tool) in [
            ("claude-cli/2.1.197 (external, cli)", Tool::ClaudeCode),
            (
                "codex_cli_rs/0.171.0 (Ubuntu 24.04.2 LTS; x86_64) WindowsTerminal",
                Tool::Codex,
            ),
            ("Cline/3.0.65", Tool::Cline),
            ("Mozilla/5.0 Cursor/1.7.0 Chrome/132", Tool::Cursor),
            (
                "opencode/0.15.2 ai-sdk/provider-utils/3.0.9",
                Tool::Opencode,
            ),
            ("Zed/0.210.4 (macos; aarch64)", Tool::Zed),
            ("OpenAI/Python 1.109.1", Tool::OpenaiSdk),
            ("OpenAI/JS 5.23.0", Tool::OpenaiSdk),
            ("Anthropic/Python 0.69.0", Tool::AnthropicSdk),
            ("curl/8.5.0", Tool::Other),
            ("", Tool::Other),
        ] {
            assert_eq!(Tool::from_user_agent(agent), tool, "{agent}");
        }
        for tool in Tool::ALL {
            assert_eq!(Tool::parse(tool.as_str()).unwrap(), *tool);
        }
    }

    #[test]
    fn codex_is_known_by_its_originator_whatever_its_user_agent() {
        let sent = headers(&[("user-agent", "reqwest"), ("originator", "codex_exec")]);
        assert_eq!(Tool::of(&sent), Tool::Codex);
    }

    #[test]
    fn the_explicit_session_wins_and_junk_is_not_a_session() {
        let claude = headers(&[
            ("user-agent", "claude-cli/2.1.197 (external, cli)"),
            (
                "x-claude-code-session-id",
                "6f1c1f0e-2a51-4f0e-9a0c-5f5e0b1d2c3a",
            ),
        ]);
        assert_eq!(
            Attribution::of(&claude),
            Attribution {
                tool: Tool::ClaudeCode,
                session: Some("6f1c1f0e-2a51-4f0e-9a0c-5f5e0b1d2c3a".into()),
                project: None,
            }
        );
        let explicit = headers(&[
            ("x-izzi-session", "review-42"),
            ("session_id", "8f1f0b18"),
            ("x-izzi-project", "billing"),
        ]);
        let seen = Attribution::of(&explicit);
        assert_eq!(seen.session.as_deref(), Some("review-42"));
        assert_eq!(seen.project.as_deref(), Some("billing"));
        let codex = headers(&[("session-id", "0199a1b2-c3d4")]);
        assert_eq!(
            Attribution::of(&codex).session.as_deref(),
            Some("0199a1b2-c3d4")
        );
        let spaced = headers(&[("x-izzi-session", "a b")]);
        assert_eq!(Attribution::of(&spaced).session, None);
        let long: &'static str = Box::leak("x".repeat(MAX_NAME + 1).into_boxed_str());
        let mut too_long = HeaderMap::new();
        too_long.insert("x-izzi-session", axum::http::HeaderValue::from_static(long));
        assert_eq!(Attribution::of(&too_long).session, None);
    }
}
