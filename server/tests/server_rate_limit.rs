//! Per-key rate limits: a key over its limit is answered `busy` (HTTP 429
//! with `Retry-After`), gets no more than its rate, and another key's
//! latency stays within 2x of what it was without the flood.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::ErrorCode;
use common::*;

/// The latencies of `n` single-event appends, in microseconds.
fn append_micros(c: &mut client::Client, n: usize, out: &mut Vec<u64>) {
    for i in 0..n {
        let t = Instant::now();
        c.append(&event("b", &format!("u{i}"), "doc.read", "doc"))
            .unwrap();
        out.push(t.elapsed().as_micros() as u64);
    }
}

fn p99(mut lat: Vec<u64>) -> u64 {
    lat.sort_unstable();
    lat[lat.len() * 99 / 100]
}

#[test]
fn a_limited_key_is_throttled_and_another_keys_p99_stays_within_2x() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = key("limited", "default", &["append", "read"], &[]);
    limited.config.events_per_sec = 200;
    limited.config.burst = 50;
    let other = key("other", "default", &["append", "read"], &[]);
    let server = start(dir.path(), &[&limited, &other]);
    let mut b = connect(server.addr(), &other);

    // The limited key asks for ten times its rate: batches of 20 every
    // 10 ms, 2,000 events a second, while `flooding` is set. The other key
    // measures in windows with and without it, taken in turn, so that
    // whatever else the machine does falls on both.
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = Arc::new(AtomicBool::new(false));
    let (accepted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flood = {
        let (stop, flooding, accepted, refused) = (
            stop.clone(),
            flooding.clone(),
            accepted.clone(),
            refused.clone(),
        );
        let mut a = connect(server.addr(), &limited);
        std::thread::spawn(move || {
            let batch: Vec<_> = (0..20)
                .map(|i| event("a", &format!("f{i}"), "doc.read", "doc"))
                .collect();
            let mut ran = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                if !flooding.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let t = Instant::now();
                match a.append_batch(&batch) {
                    Ok(r) => accepted.fetch_add(r.len() as u64, Ordering::Relaxed),
                    Err(e) => {
                        assert_eq!(e.code(), Some(ErrorCode::Busy), "{e}");
                        assert!(
                            e.to_string()
                                .contains("rate limit of key \"limited\": retry in "),
                            "{e}"
                        );
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
                std::thread::sleep(Duration::from_millis(10));
                ran += t.elapsed();
            }
            ran
        })
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        flooding.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        append_micros(&mut b, 100, &mut without);
        flooding.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        append_micros(&mut b, 100, &mut with);
    }
    stop.store(true, Ordering::Relaxed);
    let (baseline, flooded) = (p99(without), p99(with));
    let ran = flood.join().unwrap();
    let accepted = accepted.load(Ordering::Relaxed);
    // At most a full burst at the start of each of the 6 flood windows
    // (the bucket refills between them), the rate for the time it ran,
    // and one batch of debt; and many refusals.
    let allowed = 6 * 50 + (ran.as_secs_f64() * 200.0) as u64 + 20;
    assert!(
        accepted <= allowed,
        "accepted {accepted} events in {ran:?}; at most {allowed}"
    );
    assert!(accepted >= 50, "accepted {accepted}: the burst at least");
    assert!(
        refused.load(Ordering::Relaxed) > 10,
        "refused {}",
        refused.load(Ordering::Relaxed)
    );
    assert!(
        flooded <= 2 * baseline,
        "the other key's p99: {flooded} us with the flood, {baseline} us without"
    );

    // Over HTTP: 429 with Retry-After, the same error shape.
    let addr = server.http_addr().unwrap();
    let auth = format!("Bearer {}", limited.text);
    let body = serde_json::json!({"events": (0..60).map(|i| serde_json::json!({
        "tenant_id": "a", "actor_id": format!("h{i}"), "action": "doc.read", "resource": "doc"})).collect::<Vec<_>>()})
    .to_string();
    let mut saw = None;
    for _ in 0..5 {
        let r = http(
            addr,
            "POST",
            "/api/v1/events",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        if r.status == 429 {
            saw = Some(r);
            break;
        }
    }
    let r = saw.expect("a 429 within five batches of 60 at 200 events/s");
    assert_eq!(r.error_code(), "busy");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    server.shutdown();
}
