//! Rooms: one `Room` actor per active room on this instance, found through the
//! `Registry`. `fanout` takes each commit from the writer to the rooms (and
//! the bus); a room's `Sequencer` orders what arrives by seq, and the room
//! fans it out to its local sessions in memory. `presence_store` keeps who
//! is online where in Redis, for rooms starting on another instance.

pub mod events;
pub mod fanout;
pub mod host;
pub mod presence_store;
pub mod registry;
pub mod replay;
pub mod room;
pub mod roster;
pub mod sequencer;
pub mod window;

pub use events::{OutFrame, RoomEvent};
pub use registry::Registry;
pub use room::Room;
