//! `berth-shim-libcontainer`: the shim with libcontainer as a second backend, the reference
//! the differential tests compare berth's own runtime against (`berthd --runtime
//! libcontainer`). Same protocol as `berth-shim`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(berth_runtime::shim_main_libcontainer(&args));
}
