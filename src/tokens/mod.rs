//! Local, offline token counting for the gateway's `count_tokens` fallback and for
//! `izzi count-tokens`. Pure: no I/O, no network, no clock. It owns the tokenizers, the chat
//! framing arithmetic and the estimates; it must not know about HTTP, files or printing.
//!
//! # How a request is counted
//!
//! [`Prompt::request`] reads a body of any client format (Anthropic Messages, OpenAI Chat
//! Completions, OpenAI Responses; see `request.rs`) into the texts to tokenize, the framing tokens,
//! and the images and documents. [`Prompt::count`] then counts it for one model, by the catalog's
//! `tokenizer` field:
//!
//! - `o200k_base` (also `o200k_harmony`, whose ordinary text is the same) and `cl100k_base`: the
//!   real BPE (tiktoken-rs, ranks compiled in), each text encoded as ordinary text, plus the chat
//!   framing of OpenAI's cookbook (`num_tokens_from_messages`): 3 per message, the role, 1 more
//!   with a `name`, 3 to prime the reply, and per tool call its name, arguments and 1. This is
//!   exact for messages of text; tool definitions (encoded as compact JSON), images and documents
//!   follow the formulas below, so a prompt that has any is marked an estimate.
//! - Any other family (`claude`, `gemini`, `grok`, `glm`, `step`, or an unknown name): their
//!   tokenizers are not public, so the o200k_base count (framing included) is multiplied by a
//!   per-family factor, rounded up, and always marked an estimate:
//!
//!   | family | factor | calibration |
//!   |---|---|---|
//!   | `claude` | 1.25 | A published comparison of Claude 3.5 Sonnet's billed counts with GPT-4o (o200k_base) on the same inputs found 16 % more tokens on English articles, 21 % on math and 30 % on Python code. izzi serves coding tools, so the factor leans to code; undercounting is the worse error (Claude Code compacts too late), and a 1.15 factor was reported to undercount in practice. |
//!   | `gemini` | 1.08 | SentencePiece with a 256k vocabulary; third-party comparisons put English 5–10 % above o200k_base. |
//!   | `grok`, `step`, other | 1.10 | No published comparison; both are ~130k-vocabulary BPE/SentencePiece tokenizers, a little less dense than o200k_base on English and code, so a 10 % margin errs on the side of more. |
//!   | `glm` | 1.05 | GLM-4's public 151k-vocabulary tiktoken-style BPE is close to o200k_base on English and code. |
//!
//!   Non-English text differs more (Gemini and GLM are denser on CJK); the factor is one number
//!   per family because counts are for budgeting, not billing.
//!
//! # Images and documents
//!
//! Width and height are read from the header of a base64 image (PNG, GIF, JPEG, WebP; `media.rs`).
//! When they are unknown (a URL, a file id, an unreadable header) the image is taken as
//! 1024×1024 px. Per family: `claude` ≈ w×h/750 after scaling the long edge to at most 1568 px,
//! at most 1600; `gemini` 258 per 768-px tile (258 in all when both sides are at most 384 px);
//! every other family OpenAI's 85 + 170 per 512-px tile after fitting 2048×2048 and scaling the
//! short side to 768 (85 in all at `detail: "low"`). A PDF counts 3000 tokens per page (text and
//! page image; pages are counted from its `/Type /Page` objects, at least 1). Audio is not counted.
//! Claude adds its tool-use system prompt when tools are defined: 346 tokens, 313 when
//! `tool_choice` forces a tool (Anthropic's published figures for Claude 4 models).
//!
//! Counting a non-empty input never gives 0: a request carries at least the reply priming.

mod bound;
mod media;
mod request;

use std::borrow::Cow;
use std::cell::OnceCell;

use tiktoken_rs::CoreBPE;

use crate::catalog::Model;
pub(crate) use bound::{has_images, input_bound, input_estimate, text_estimate};
use media::{Family, Image};
pub(crate) use request::{Shape, max_output, max_output_of};

/// A local count of a request's input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) tokens: u64,
    /// Counted with the model's real tokenizer, not estimated.
    pub(crate) exact: bool,
}

/// Counts the input tokens of a request body (any client format) for `model`.
pub(crate) fn count_request(model: &Model, body: &serde_json::Value) -> Count {
    Prompt::request(body).count(model)
}

/// A real BPE tokenizer, compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    O200k,
    Cl100k,
}

impl Encoding {
    /// The ranks, loaded on first use (about 0.15 s and 45 MB for o200k_base): a gateway whose
    /// upstreams report usage never needs them, so it starts faster and smaller without them.
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Self::O200k => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100k => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::O200k => "o200k_base",
            Self::Cl100k => "cl100k_base",
        }
    }
}

/// How a model's tokens are counted: its catalog `tokenizer` field, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tokenizer {
    /// The BPE that is run.
    pub(crate) encoding: Encoding,
    /// `None` when `encoding` is the model's own tokenizer; else the estimate's factor in
    /// hundredths (125 = ×1.25).
    factor: Option<u64>,
    family: Family,
}

impl Tokenizer {
    /// The tokenizer for a catalog `tokenizer` value.
    pub(crate) fn of(model: &Model) -> Self {
        let estimate = |factor, family| Self {
            encoding: Encoding::O200k,
            factor: Some(factor),
            family,
        };
        match model.tokenizer.as_str() {
            "o200k_base" | "o200k_harmony" => Self {
                encoding: Encoding::O200k,
                factor: None,
                family: Family::OpenAi,
            },
            "cl100k_base" => Self {
                encoding: Encoding::Cl100k,
                factor: None,
                family: Family::OpenAi,
            },
            "claude" => estimate(125, Family::Claude),
            "gemini" => estimate(108, Family::Gemini),
            "glm" => estimate(105, Family::OpenAi),
            _ => estimate(110, Family::OpenAi),
        }
    }

    /// `o200k_base`, or for an estimate `claude ≈ o200k_base × 1.25`.
    pub(crate) fn describe(self, model: &Model) -> String {
        match self.factor {
            None => self.encoding.name().to_owned(),
            Some(f) => format!(
                "{} ≈ {} × {}.{:02}",
                model.tokenizer,
                self.encoding.name(),
                f / 100,
                f % 100
            ),
        }
    }

    fn scale(self, tokens: u64) -> u64 {
        self.factor
            .map_or(tokens, |f| (tokens.saturating_mul(f)).div_ceil(100))
    }
}

/// A request (or a plain text) read for counting: what to tokenize and what to add. Counting it
/// for several models tokenizes each text once per encoding.
#[derive(Debug, Default)]
pub(crate) struct Prompt<'a> {
    texts: Vec<Cow<'a, str>>,
    /// Chat framing tokens, the same in every encoding.
    overhead: u64,
    images: Vec<Image>,
    pdf_pages: u64,
    /// Tool definitions exist: `Some(forced)`, where `forced` says `tool_choice` names a tool.
    tools: Option<bool>,
    /// Set when a part was counted by a formula (tool JSON, media): the count is an estimate.
    approximate: bool,
    o200k: OnceCell<u64>,
    cl100k: OnceCell<u64>,
}

impl<'a> Prompt<'a> {
    /// A plain text, counted as it is: no message framing.
    pub(crate) fn plain(text: &'a str) -> Self {
        Self {
            texts: vec![Cow::Borrowed(text)],
            ..Self::default()
        }
    }

    /// The bytes of text to tokenize, for progress.
    pub(crate) fn text_bytes(&self) -> u64 {
        self.texts.iter().map(|t| t.len() as u64).sum()
    }

    /// Tokenizes every text with `encoding` (once; later calls return the memo), calling
    /// `progress` with the bytes done after each chunk.
    pub(crate) fn tokenize(&self, encoding: Encoding, progress: &mut dyn FnMut(u64)) -> u64 {
        let memo = match encoding {
            Encoding::O200k => &self.o200k,
            Encoding::Cl100k => &self.cl100k,
        };
        *memo.get_or_init(|| {
            let bpe = encoding.bpe();
            let mut tokens = 0;
            for text in &self.texts {
                for chunk in chunks(text, CHUNK_BYTES) {
                    tokens += bpe.count_ordinary(chunk) as u64;
                    progress(chunk.len() as u64);
                }
            }
            tokens
        })
    }

    /// The input tokens of this prompt for `model`.
    pub(crate) fn count(&self, model: &Model) -> Count {
        let tokenizer = Tokenizer::of(model);
        let text = self.tokenize(tokenizer.encoding, &mut |_| {}) + self.overhead;
        let images: u64 = self
            .images
            .iter()
            .map(|image| image.tokens(tokenizer.family))
            .sum();
        let tool_prompt = match (tokenizer.family, self.tools) {
            (Family::Claude, Some(true)) => 313,
            (Family::Claude, Some(false)) => 346,
            _ => 0,
        };
        Count {
            tokens: tokenizer.scale(text) + images + self.pdf_pages * PDF_PAGE_TOKENS + tool_prompt,
            exact: tokenizer.factor.is_none() && !self.approximate,
        }
    }
}

/// A PDF page: up to ~3000 tokens of text plus its page image (Anthropic's PDF support notes).
const PDF_PAGE_TOKENS: u64 = 3000;

/// Texts are tokenized in pieces of about this size, so progress can move and a huge text is
/// not one regex pass.
const CHUNK_BYTES: usize = 64 * 1024;

/// Splits `text` into pieces of at least `size` bytes (the last may be shorter) that tokenize to
/// the same total as the whole. A cut falls only after a `\n` that is followed by an ASCII letter
/// or digit: in both o200k_base's and cl100k_base's split patterns a newline can end a piece but
/// never starts a letter or digit piece (their optional one-character prefix excludes `\r\n`), so
/// no BPE piece spans such a point. A text without such a point stays whole.
fn chunks(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let bytes = rest.as_bytes();
        let cut = (size.max(1)..bytes.len())
            .find(|&i| bytes[i - 1] == b'\n' && bytes[i].is_ascii_alphanumeric())
            .unwrap_or(bytes.len());
        // The cut is after an ASCII byte, so it is a char boundary.
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        Some(chunk)
    })
}

/// The benchmark's way in (`benches/tokens.rs`): counts `body` for the built-in catalog's
/// `model`. Not an API.
#[doc(hidden)]
pub fn bench_count(model: &str, body: &serde_json::Value) -> Option<u64> {
    let catalog = crate::catalog::Catalog::load(&[]).ok()?;
    Some(count_request(catalog.get(model)?, body).tokens)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::catalog::Catalog;

    fn count(encoding: Encoding, text: &str) -> u64 {
        Prompt::plain(text).tokenize(encoding, &mut |_| {})
    }

    /// Expected counts come from OpenAI's Python `tiktoken` 0.14 (`encode_ordinary`), run on the
    /// rank files that tiktoken-rs embeds after checking their SHA-256 against the hashes
    /// tiktoken pins for OpenAI's published files. "tiktoken is great!" = 6 is also the OpenAI
    /// cookbook's own example.
    #[test]
    fn known_counts_for_both_encodings() {
        let cases: &[(&str, &str, u64, u64)] = &[
            ("empty", "", 0, 0),
            ("hello", "hello world", 2, 2),
            ("cookbook", "tiktoken is great!", 6, 6),
            ("emoji", "🦊🎉👍🏽 👨‍👩‍👧‍👦", 19, 29),
            ("chinese", "你好，世界！这是一个测试。", 8, 12),
            (
                "japanese",
                "こんにちは、世界。日本語のテキストです。",
                12,
                16,
            ),
            ("korean", "안녕하세요 세계", 3, 9),
            (
                "code",
                "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    println!(\"{v:?}\");\n}\n",
                36,
                36,
            ),
            ("1000 spaces", &" ".repeat(1000), 9, 9),
            ("500 newlines", &"\n".repeat(500), 32, 17),
            (
                "mixed whitespace",
                &format!("a{}b\t\t\t\n\n\n   \r\n  c", " ".repeat(100)),
                9,
                9,
            ),
            ("5000 a", &"a".repeat(5000), 625, 625),
            (
                "special token text",
                "<|endoftext|> is ordinary here",
                10,
                10,
            ),
        ];
        for (name, text, o200k, cl100k) in cases {
            assert_eq!(count(Encoding::O200k, text), *o200k, "o200k_base: {name}");
            assert_eq!(
                count(Encoding::Cl100k, text),
                *cl100k,
                "cl100k_base: {name}"
            );
        }
    }

    fn model(tokenizer: &str) -> Model {
        let catalog = Catalog::load(&[]).unwrap();
        let mut model = catalog.get("gpt-4.1").unwrap().clone();
        tokenizer.clone_into(&mut model.tokenizer);
        model
    }

    /// The OpenAI cookbook's `num_tokens_from_messages` example: the API reported 129 prompt
    /// tokens for gpt-4 / gpt-3.5-turbo (cl100k_base) and 124 for gpt-4o (o200k_base).
    #[test]
    fn cookbook_messages_match_the_api_counts() {
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
            {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
            {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
            {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
            {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
            {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
        ]});
        let o200k = count_request(&model("o200k_base"), &body);
        assert_eq!(
            o200k,
            Count {
                tokens: 124,
                exact: true
            }
        );
        assert_eq!(count_request(&model("cl100k_base"), &body).tokens, 129);
    }

    #[test]
    fn estimates_scale_the_o200k_count_and_say_so() {
        let body = json!({"messages": [{"role": "user", "content": "hello world"}]});
        // 3 per message + "user" (1) + "hello world" (2) + 3 priming = 9.
        let exact = count_request(&model("o200k_base"), &body);
        assert_eq!(exact.tokens, 9);
        for (family, expected) in [
            ("claude", 12),
            ("gemini", 10),
            ("glm", 10),
            ("grok", 10),
            ("step", 10),
            ("estimate", 10),
        ] {
            let counted = count_request(&model(family), &body);
            assert_eq!(counted.tokens, expected, "{family}");
            assert!(!counted.exact, "{family}");
        }
        assert_eq!(
            Tokenizer::of(&model("claude")).describe(&model("claude")),
            "claude ≈ o200k_base × 1.25"
        );
    }

    #[test]
    fn never_zero_for_non_empty_input() {
        for family in ["o200k_base", "cl100k_base", "claude", "gemini"] {
            let m = model(family);
            assert!(Prompt::plain("x").count(&m).tokens >= 1, "{family}");
            assert!(count_request(&m, &json!({})).tokens >= 1, "{family}");
            assert_eq!(Prompt::plain("").count(&m).tokens, 0, "{family}");
        }
    }

    #[test]
    fn tokenizing_memoizes_per_encoding() {
        let prompt = Prompt::plain("hello world");
        let mut calls = 0;
        assert_eq!(prompt.tokenize(Encoding::O200k, &mut |_| calls += 1), 2);
        assert_eq!(prompt.tokenize(Encoding::O200k, &mut |_| calls += 1), 2);
        assert_eq!(calls, 1);
    }

    #[test]
    fn chunks_cut_only_before_a_line_starting_with_a_letter_or_digit() {
        let text = "ab\n  cd\nef\n\n9x";
        let parts: Vec<&str> = chunks(text, 1).collect();
        assert_eq!(parts, ["ab\n  cd\n", "ef\n\n", "9x"]);
        assert_eq!(parts.concat(), text);
        assert_eq!(chunks("no newline at all", 2).count(), 1);
        assert_eq!(chunks("", 2).count(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Chunked tokenizing gives exactly the whole text's count, in both encodings.
        #[test]
        fn chunked_counts_equal_whole_counts(
            text in "([a-zA-Z0-9]{0,6}|[ \t]{0,3}|[\r\n]{1,2}|[.,'!/{}]{1,2}|[é你🦊]){0,60}",
            size in 1usize..24,
        ) {
            for encoding in [Encoding::O200k, Encoding::Cl100k] {
                let bpe = encoding.bpe();
                let chunked: usize = chunks(&text, size).map(|c| bpe.count_ordinary(c)).sum();
                prop_assert_eq!(chunked, bpe.count_ordinary(&text));
            }
        }
    }
}
