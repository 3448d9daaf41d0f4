//! The SDK against a real cluster: three `alcor server` processes on
//! 127.0.0.1 (see `support` for how they are found and started).

mod concurrency;
mod errors;
mod failover;
mod retry;
mod support;
mod watch;
