//! Images and documents in a request: their size read from base64 headers, and their tokens per
//! model family (the formulas are in the parent module's doc). Pure; decodes only what it needs.

use base64::Engine as _;
use base64::alphabet::STANDARD as ALPHABET;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard base64 that accepts missing padding: clients are not all strict.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &ALPHABET,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Whose published image arithmetic applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Claude,
    Gemini,
    /// OpenAI's tiles; also the fallback for families that publish nothing.
    OpenAi,
}

/// An image in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Image {
    /// Width and height in pixels, when the header could be read.
    pub(super) size: Option<(u32, u32)>,
    /// OpenAI `detail: "low"`: one fixed-size tile.
    pub(super) low_detail: bool,
}

/// Taken when an image's size is unknown: a typical screenshot-sized square.
const DEFAULT_SIZE: (u32, u32) = (1024, 1024);

impl Image {
    /// An image from base64 data (no `data:` prefix), its size read from the header.
    pub(super) fn base64(data: &str, low_detail: bool) -> Self {
        // 64 KiB of base64 holds 48 KiB of image: every header and most JPEG EXIF blocks.
        let mut end = data.len().min(64 * 1024);
        if end < data.len() {
            end -= end % 4;
        }
        let size = data
            .get(..end)
            .and_then(|prefix| BASE64.decode(prefix).ok())
            .and_then(|bytes| size_of(&bytes));
        Self { size, low_detail }
    }

    /// An image whose bytes are not in the request (a URL or a file id).
    pub(super) fn unknown(low_detail: bool) -> Self {
        Self {
            size: None,
            low_detail,
        }
    }

    /// Its input tokens for `family`.
    pub(super) fn tokens(self, family: Family) -> u64 {
        let (w, h) = self.size.unwrap_or(DEFAULT_SIZE);
        let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
        match family {
            Family::Claude => {
                // Images whose long edge exceeds 1568 px are scaled down first.
                let scale = (1568.0 / w.max(h)).min(1.0);
                let tokens = ((w * scale) * (h * scale) / 750.0).ceil();
                whole(tokens).clamp(1, 1600)
            }
            Family::Gemini => {
                if w <= 384.0 && h <= 384.0 {
                    258
                } else {
                    258 * whole((w / 768.0).ceil()) * whole((h / 768.0).ceil())
                }
            }
            Family::OpenAi => {
                if self.low_detail {
                    return 85;
                }
                // Fit in 2048×2048, then scale the short side down to 768.
                let fit = (2048.0 / w.max(h)).min(1.0);
                let (w, h) = (w * fit, h * fit);
                let short = (768.0 / w.min(h)).min(1.0);
                let tiles = whole((w * short / 512.0).ceil()) * whole((h * short / 512.0).ceil());
                85 + 170 * tiles
            }
        }
    }
}

/// A non-negative float already rounded to an integer, as `u64`.
fn whole(x: f64) -> u64 {
    // Inputs are products of `u32` sizes and small ratios: far below 2^53, never negative.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the value is a small, non-negative whole number"
    )]
    let n = x as u64;
    n
}

/// Width and height from the first bytes of a PNG, GIF, JPEG or WebP file.
fn size_of(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |at: usize| {
        Some(u32::from(u16::from_be_bytes(
            bytes.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes(
            bytes.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let le24 = |at: usize| {
        let b = bytes.get(at..at + 3)?;
        Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        return Some((be32(16)?, be32(20)?));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return match bytes.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let b = bytes.get(21..25)?;
                let w = 1 + (u32::from(b[0]) | (u32::from(b[1]) & 0x3f) << 8);
                let h = 1
                    + (u32::from(b[1]) >> 6
                        | u32::from(b[2]) << 2
                        | (u32::from(b[3]) & 0x0f) << 10);
                Some((w, h))
            }
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            _ => None,
        };
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        // Walk the JPEG segments to the first start-of-frame, which holds height then width.
        let mut at = 2;
        loop {
            while bytes.get(at) == Some(&0xff) && bytes.get(at + 1) == Some(&0xff) {
                at += 1;
            }
            if bytes.get(at) != Some(&0xff) {
                return None;
            }
            let marker = *bytes.get(at + 1)?;
            match marker {
                0xd0..=0xd9 | 0x01 => at += 2,
                0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                    return Some((be16(at + 7)?, be16(at + 5)?));
                }
                _ => at += 2 + usize::try_from(be16(at + 2)?).ok()?,
            }
        }
    }
    None
}

/// The pages of a base64 PDF: its `/Type /Page` objects (not `/Pages`), at least 1.
pub(super) fn pdf_pages(data: &str) -> u64 {
    let Ok(bytes) = BASE64.decode(data.trim()) else {
        return 1;
    };
    let mut pages = 0;
    for needle in [&b"/Type /Page"[..], b"/Type/Page"] {
        for at in memchr::memmem::find_iter(&bytes, needle) {
            if bytes.get(at + needle.len()) != Some(&b's') {
                pages += 1;
            }
        }
    }
    pages.max(1)
}

/// Base64 data decoded, when it is UTF-8 text.
pub(super) fn text(data: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(data.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0]);
        b
    }

    #[test]
    fn reads_sizes_from_image_headers() {
        assert_eq!(size_of(&png(1920, 1080)), Some((1920, 1080)));
        assert_eq!(size_of(b"GIF89a\x40\x01\xf0\x00"), Some((320, 240)));
        // JPEG: SOI, an APP0 segment of 16 bytes, then SOF0 with height 600, width 800.
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
        jpeg.extend([0; 14]);
        jpeg.extend([0xff, 0xc0, 0x00, 0x11, 0x08, 0x02, 0x58, 0x03, 0x20, 0x03]);
        assert_eq!(size_of(&jpeg), Some((800, 600)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        webp.extend([0x7f, 0x02, 0x00, 0xdf, 0x01, 0x00]);
        assert_eq!(size_of(&webp), Some((640, 480)));
        let mut lossless = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        // 100 × 50: width-1 = 99 in 14 bits, height-1 = 49 in the next 14.
        let bits: u32 = 99 + (49 << 14);
        lossless.extend(bits.to_le_bytes());
        assert_eq!(size_of(&lossless), Some((100, 50)));
        assert_eq!(size_of(b"not an image"), None);
        assert_eq!(size_of(&[0xff, 0xd8, 0xff]), None);
    }

    #[test]
    fn base64_images_are_sized_and_unknown_ones_use_the_default() {
        let data = STANDARD.encode(png(200, 100));
        assert_eq!(Image::base64(&data, false).size, Some((200, 100)));
        assert_eq!(Image::base64("!!!", false).size, None);
        let unknown = Image::unknown(false);
        assert_eq!(
            unknown.tokens(Family::Claude),
            Image {
                size: Some(DEFAULT_SIZE),
                low_detail: false
            }
            .tokens(Family::Claude)
        );
    }

    fn sized(w: u32, h: u32) -> Image {
        Image {
            size: Some((w, h)),
            low_detail: false,
        }
    }

    /// Worked examples from the providers' vision docs.
    #[test]
    fn published_image_examples() {
        // Anthropic: 1000×1000 ≈ 1334 tokens; 200×200 ≈ 54; large images cap near 1600.
        assert_eq!(sized(1000, 1000).tokens(Family::Claude), 1334);
        assert_eq!(sized(200, 200).tokens(Family::Claude), 54);
        assert_eq!(sized(4000, 3000).tokens(Family::Claude), 1600);
        // OpenAI: 1024×1024 high = 765; 2048×4096 high = 1105; low detail = 85.
        assert_eq!(sized(1024, 1024).tokens(Family::OpenAi), 765);
        assert_eq!(sized(2048, 4096).tokens(Family::OpenAi), 1105);
        let low = Image {
            size: Some((4096, 4096)),
            low_detail: true,
        };
        assert_eq!(low.tokens(Family::OpenAi), 85);
        // Gemini: small images 258; 1024×1024 spans 2×2 tiles of 768.
        assert_eq!(sized(300, 300).tokens(Family::Gemini), 258);
        assert_eq!(sized(1024, 1024).tokens(Family::Gemini), 1032);
    }

    #[test]
    fn pdf_pages_are_counted_from_page_objects() {
        let pdf = b"%PDF-1.4\n1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] >>\n2 0 obj << /Type /Page >>\n3 0 obj <</Type/Page>>\n";
        assert_eq!(pdf_pages(&STANDARD.encode(pdf)), 2);
        assert_eq!(pdf_pages(&STANDARD.encode(b"%PDF-1.5 compressed")), 1);
        assert_eq!(pdf_pages("not base64!"), 1);
    }
}
