//! Integration tests of target-app: real servers on 127.0.0.1:0, real HTTP, real protobuf decoding.

mod abuse;
mod chaos;
mod endpoints;
mod h2c;
mod process;
mod support;
mod telemetry;
