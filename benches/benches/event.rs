//! The audit event's hot path on the server: decode what arrived, validate
//! it, encode what is stored (256-byte events, as in `chainlog bench`).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use proto::event::{Event, EventRef, Limits};

fn event_256() -> Event {
    let mut e = Event {
        tenant_id: "tenant-07".into(),
        actor_id: "user-3-0".into(),
        actor_name: "Load Generator".into(),
        action: "document.viewed".into(),
        resource: "document".into(),
        resource_id: "doc-000001".into(),
        metadata: r#"{"pad":""}"#.into(),
        occurred_at: 1_700_000_000_000_000_000,
        ..Event::default()
    };
    let base = e.as_ref().encoded_len();
    e.metadata = format!(r#"{{"pad":"{}"}}"#, "x".repeat(256 - base));
    e
}

fn event_codec(c: &mut Criterion) {
    let e = event_256();
    let bytes = e.encode();
    assert_eq!(bytes.len(), 256);
    let limits = Limits::default();
    let mut g = c.benchmark_group("event_256");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            e.as_ref().encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(EventRef::decode(black_box(&bytes)).map(|e| e.occurred_at)))
    });
    g.bench_function("validate", |b| {
        let r = EventRef::decode(&bytes).expect("decodes");
        b.iter(|| black_box(r.validate(&limits, 1_700_000_000_000_000_000)))
    });
    // The metadata check alone: most of `validate` is the rest.
    g.bench_function("validate_metadata_json", |b| {
        b.iter(|| black_box(proto::json::check_object(black_box(&e.metadata))))
    });
    g.finish();
}

criterion_group!(benches, event_codec);
criterion_main!(benches);
