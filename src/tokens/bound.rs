//! The most input tokens a request body can be, found without parsing it: what a key with money
//! limits holds before the upstream says what the request cost. Text has no more tokens than
//! bytes; images and documents are few bytes (a URL) and many tokens, so each counts at its
//! family's largest; nothing is more than the model's context window.

use crate::catalog::Model;

use super::Tokenizer;
use super::media::Family;

/// Tokens a provider adds that the body does not show (Claude's tool-use system prompt is 346).
const HIDDEN_PROMPT: u64 = 512;

/// A document's pages are unknown without reading it: for a model whose context window is not
/// known either (only a provider's glob matched it), this stands for "no bound".
const UNBOUNDED: u64 = 10_000_000;

/// The most input tokens `body` (a request of any format) can be for `model`.
pub(crate) fn input_bound(model: &Model, body: &[u8]) -> u64 {
    let limit = if model.catalogued {
        model.context_window
    } else {
        UNBOUNDED
    };
    let family = Tokenizer::of(model).family;
    let mut media = 0_u64;
    for kind in part_types(body) {
        match kind {
            kind if is_image(kind) => media += max_image_tokens(family),
            b"document" | b"file" | b"input_file" => return limit,
            _ => {}
        }
    }
    (body.len() as u64 + HIDDEN_PROMPT + media).min(limit)
}

/// The largest an image can be, in tokens, after the provider scales it.
fn max_image_tokens(family: Family) -> u64 {
    match family {
        // Scaled to at most 1568 px on the long edge: about 1600 tokens at most.
        Family::Claude => 1600,
        // 258 per 768-px tile; the largest images Gemini takes whole span 4 × 4 tiles.
        Family::Gemini => 16 * 258,
        // Tiles: at most 85 + 170 × 8; patch-based models: 1536 patches × up to 1.72.
        Family::OpenAi => 2700,
    }
}

/// Bytes of a request body per input token in [`input_estimate`]: prose and code run 3 to 5.
const BYTES_PER_TOKEN: u64 = 4;

/// Whether a part type is an image, in any format.
fn is_image(kind: &[u8]) -> bool {
    matches!(kind, b"image" | b"image_url" | b"input_image")
}

/// A cheap estimate of a request's input tokens, for routing rules (`min_input_tokens`), made
/// without tokenizing and before the model is known: a quarter of the body's bytes, plus each
/// image at Claude's largest (1600).
pub(crate) fn input_estimate(body: &[u8]) -> u64 {
    let images = part_types(body).filter(|kind| is_image(kind)).count() as u64;
    text_estimate(body) + images * max_image_tokens(Family::Claude)
}

/// The part of [`input_estimate`] that needs no scan: a quarter of the body's bytes. Images only
/// add to it, so a body this long already reaches any bound it reaches.
pub(crate) fn text_estimate(body: &[u8]) -> u64 {
    body.len() as u64 / BYTES_PER_TOKEN
}

/// Whether any part of `body` (a request of any format) is an image.
pub(crate) fn has_images(body: &[u8]) -> bool {
    part_types(body).any(is_image)
}

/// The value of every `"type": "..."` member in `body`. A `"type"` inside a string has its
/// quotes escaped (`\"type\"`), so every match is a real member name.
fn part_types(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    const NAME: &[u8] = b"\"type\"";
    memchr::memmem::find_iter(body, NAME).filter_map(move |at| {
        let rest = &body[at + NAME.len()..];
        let rest = rest.trim_ascii_start().strip_prefix(b":")?;
        let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
        let end = memchr::memchr(b'"', rest)?;
        Some(&rest[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn the_estimate_is_a_quarter_of_the_bytes_and_images_at_their_largest() {
        let text = r#"{"messages":[{"role":"user","content":"hello there, how are you"}]}"#;
        assert_eq!(input_estimate(text.as_bytes()), text.len() as u64 / 4);
        assert!(!has_images(text.as_bytes()));
        let image = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}"#;
        assert_eq!(
            input_estimate(image.as_bytes()),
            image.len() as u64 / 4 + 1600
        );
        assert!(has_images(image.as_bytes()));
    }

    fn bound(model: &str, body: &str) -> u64 {
        let catalog = Catalog::load(&[]).unwrap();
        input_bound(catalog.get(model).unwrap(), body.as_bytes())
    }

    #[test]
    fn text_is_bounded_by_its_bytes() {
        let body = r#"{"messages":[{"role":"user","content":"say \"type\": \"image\" please"}]}"#;
        assert_eq!(bound("sonnet", body), body.len() as u64 + HIDDEN_PROMPT);
    }

    #[test]
    fn each_image_counts_at_its_familys_largest() {
        let claude = r#"{"messages":[{"role":"user","content":[{"type": "image","source":{"type":"url","url":"https://x/a.png"}},{"type":"image","source":{"type":"url","url":"https://x/b.png"}}]}]}"#;
        assert_eq!(
            bound("sonnet", claude),
            claude.len() as u64 + HIDDEN_PROMPT + 2 * 1600
        );
        let chat = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}"#;
        assert_eq!(
            bound("gpt-4.1", chat),
            chat.len() as u64 + HIDDEN_PROMPT + 2700
        );
        let responses = r#"{"input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/a.png"}]}]}"#;
        assert_eq!(
            bound("gpt-4.1", responses),
            responses.len() as u64 + HIDDEN_PROMPT + 2700
        );
    }

    #[test]
    fn a_document_may_fill_the_context_window_and_nothing_exceeds_it() {
        let catalog = Catalog::load(&[]).unwrap();
        let sonnet = catalog.get("sonnet").unwrap();
        let doc = r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]}"#;
        assert_eq!(bound("sonnet", doc), sonnet.context_window);
        let huge = "x".repeat(usize::try_from(sonnet.context_window).unwrap() * 2);
        assert_eq!(bound("sonnet", &huge), sonnet.context_window);
        let unknown = Model::uncatalogued("gpt-9", "openai", None);
        assert_eq!(input_bound(&unknown, doc.as_bytes()), UNBOUNDED);
    }
}
