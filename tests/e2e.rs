//! End-to-end tests: real `ferry` processes on loopback port 0 with temp
//! dirs, driven through the HTTP API and, for the TUI, a real terminal.

mod e2e {
    pub mod api_errors;
    pub mod cli;
    pub mod cycle_tui;
    pub mod demo;
    pub mod guide;
    pub mod https;
    pub mod instances;
    pub mod pairing;
    pub mod pictures;
    pub mod protection;
    pub mod protection_tui;
    pub mod qemu;
    pub mod races;
    pub mod roles_tui;
    pub mod runs;
    pub mod runs_faults;
    pub mod runs_tui;
    pub mod sites;
    pub mod support;
    pub mod terminal;
    pub mod test_copies;
    pub mod trust;
    pub mod truth;
    pub mod tui;
    pub mod two_tuis;
}
