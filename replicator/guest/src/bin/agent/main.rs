//! ferry's guest agent (placeholder until the agent lands).

fn main() {}
