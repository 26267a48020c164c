//! Integration tests of the API server double, driven by a real `kube::Client` (and, in
//! `kubectl`, by the real kubectl binary). One test binary, so kube is linked once.

mod common;

mod apply;
mod controller;
mod crud;
mod deletion;
mod discovery;
mod faults;
mod kubectl;
mod leases;
mod status;
mod watch;
