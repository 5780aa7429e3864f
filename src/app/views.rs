//! The views the app switches between, and the replication view's columns.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The operator's home screen, opened first.
    Home,
    Dashboard,
    Replication,
    Events,
    Mappings,
    Groups,
    Plans,
    History,
}

impl View {
    pub const ALL: [View; 8] = [
        View::Home,
        View::Dashboard,
        View::Replication,
        View::Events,
        View::Mappings,
        View::Groups,
        View::Plans,
        View::History,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Home => "Home",
            Self::Dashboard => "Dashboard",
            Self::Replication => "Replication",
            Self::Events => "Events",
            Self::Mappings => "Mappings",
            Self::Groups => "Groups",
            Self::Plans => "Plans",
            Self::History => "History",
        }
    }

    /// The title on narrow terminals.
    pub fn short(self) -> &'static str {
        match self {
            Self::Dashboard => "Dash",
            Self::Replication => "Repl",
            Self::Mappings => "Maps",
            other => other.title(),
        }
    }

    /// The views that edit protection objects.
    pub fn edits(self) -> bool {
        matches!(self, Self::Mappings | Self::Groups | Self::Plans)
    }

    /// The views that list items one per row, with a `/` filter.
    pub fn lists(self) -> bool {
        matches!(
            self,
            Self::Replication | Self::Events | Self::Groups | Self::Plans | Self::History
        )
    }

    pub(super) fn step(self, by: isize) -> Self {
        let i = Self::ALL.iter().position(|v| *v == self).unwrap_or(0) as isize;
        Self::ALL[(i + by).rem_euclid(Self::ALL.len() as isize) as usize]
    }
}

/// Columns of the replication view, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Vm,
    Direction,
    State,
    Rpo,
    Lag,
    Progress,
    LastSync,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Vm,
        Column::Direction,
        Column::State,
        Column::Rpo,
        Column::Lag,
        Column::Progress,
        Column::LastSync,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Vm => "VM",
            Self::Direction => "Direction",
            Self::State => "State",
            Self::Rpo => "RPO",
            Self::Lag => "Lag",
            Self::Progress => "Sync",
            Self::LastSync => "Last sync",
        }
    }
}
