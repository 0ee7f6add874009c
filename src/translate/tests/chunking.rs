//! Any split: a stream cut into arbitrary byte chunks translates as the whole stream does,
//! for every stream case of the golden files.

use proptest::prelude::*;

use super::*;

/// The stream cases, for the chunking property.
fn stream_cases() -> Vec<(Format, Kind, Vec<u8>, Vec<u8>)> {
    let mut cases = Vec::new();
    for entry in fs_err::read_dir(golden_root()).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(pair) = name.strip_prefix("stream-") else {
            continue;
        };
        let (format, kind) = pair.split_once('-').unwrap();
        for file in fs_err::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = path.to_str().unwrap().to_owned();
            if !text.ends_with(".in.sse") {
                continue;
            }
            let stem = text.trim_end_matches(".in.sse");
            let request = fs_err::read(format!("{stem}.request.json"))
                .unwrap_or_else(|_| br#"{"model":"client-model","messages":[]}"#.to_vec());
            cases.push((
                format_of(format),
                kind_of(kind),
                fs_err::read(&path).unwrap(),
                request,
            ));
        }
    }
    assert!(cases.len() >= 15, "stream golden cases missing");
    cases
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any stream cut into arbitrary byte chunks translates to what the whole stream does.
    #[test]
    fn chunking_never_changes_a_translated_stream(cuts in proptest::collection::vec(0.0f64..1.0, 0..40)) {
        for (format, kind, input, request) in stream_cases() {
            let body = Body::parse(&request).unwrap();
            let target = target(&body, &PLAIN);
            let whole = run_stream(format, kind, &target, &[&input]);
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_precision_loss,
                clippy::cast_sign_loss,
                reason = "a fraction in [0, 1) of a short input's length"
            )]
            let mut points: Vec<usize> = cuts.iter().map(|c| (c * input.len() as f64) as usize).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for point in points {
                chunks.push(&input[last..point]);
                last = point;
            }
            chunks.push(&input[last..]);
            let cut = run_stream(format, kind, &target, &chunks);
            prop_assert_eq!(&cut, &whole);
        }
    }
}
