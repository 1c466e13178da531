//! `berth-shim start <bundle>`: creates the container described by `<bundle>/spec.json`, prints
//! `{"pid":N}` (exit 0) or `{"error":"..."}` (exit 1), and stays behind, detached, serving
//! `<bundle>/shim.sock` until the container exits. See `berth_runtime::shim`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(berth_runtime::shim_main(&args));
}
