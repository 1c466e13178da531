//! berth's image builder: `docker build`'s classic protocol (`POST /build`) and `berth
//! build`. [`dockerfile`] parses, [`expand`] does Docker's word processing; the executor
//! runs each step through the engine (RUN in a container of the same runtime as `run`).

pub mod dockerfile;
pub mod expand;
