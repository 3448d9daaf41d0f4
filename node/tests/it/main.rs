//! End-to-end tests of the real `alcor` binary: three `alcor server`
//! processes on 127.0.0.1, driven by the gRPC client and `alcor ctl`.

mod cluster;
mod kill_leader;
