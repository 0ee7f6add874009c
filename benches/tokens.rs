//! Counting a 1 MB prompt offline: a Chat Completions body with one 1 MiB user message of prose,
//! code and JSON, for an exact model (gpt-4.1, o200k_base) and an estimated one (Claude Sonnet,
//! o200k_base × 1.25). Run with `cargo bench --bench tokens`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

/// About 1 MiB of mixed text; numbers vary per block so it is not one repeated string.
fn prompt() -> String {
    let mut text = String::with_capacity(1 << 20);
    let mut i = 0_u64;
    while text.len() < 1 << 20 {
        text.push_str(&format!(
            "Section {i}. The gateway reads the request, resolves the model alias and counts \
             the prompt before it forwards anything upstream; budgets are checked first.\n\
             fn handler_{i}(req: &Request) -> Result<u64, Error> {{\n    let n = req.len() * {i};\n    \
             Ok(n.min(4096))\n}}\n\
             {{\"id\": \"call_{i:08x}\", \"tokens\": {}, \"cached\": {}}}\n\n",
            i * 37 % 1000,
            i.is_multiple_of(3)
        ));
        i += 1;
    }
    text
}

fn bench(c: &mut Criterion) {
    let text = prompt();
    let body = json!({"model": "gpt-4.1", "messages": [
        {"role": "system", "content": "You are a careful reviewer."},
        {"role": "user", "content": text}]});
    let mut group = c.benchmark_group("count 1 MiB prompt");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for model in ["gpt-4.1", "claude-sonnet-4-20250514"] {
        group.bench_function(model, |b| {
            b.iter(|| izzi::bench_count(black_box(model), black_box(&body)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
