//! Black-box fault-testing harness: real `alcor` processes in network namespaces (being built by the fault-testing issue).
