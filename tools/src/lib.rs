//! chainlog's operator and user binaries (`segment-verify`, `segment-dump`,
//! the `chainlog` CLI). Not built yet: see issues 4 and 6. The engine's
//! verification, which `segment-verify` will wrap, is `engine::verify`.
