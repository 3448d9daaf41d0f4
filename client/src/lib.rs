//! Rust client SDK of the Alcor-RS orchestrator API (being built by the API issue).
