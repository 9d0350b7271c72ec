//! Rooms: one `Room` actor per active room on this instance, found through the
//! `Registry`. Rooms order committed messages by seq and fan them out to their
//! local sessions in memory.

pub mod events;
pub mod frames;
pub mod registry;
pub mod room;

pub use events::{OutFrame, RoomEvent};
pub use registry::Registry;
pub use room::Room;
