//! The one door to the host for the pipeline: every lookup whose answer depends on the
//! live host (/proc, netlink, the password database, the clock) goes through
//! [`Facts::look`]. Live, it just looks; recording, it also writes the answer after the
//! frame being handled; replaying, it answers from the recording without looking.
use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    path::Path,
    rc::Rc,
};

use log::warn;
use serde::{Serialize, de::DeserializeOwned};

use super::{Frame, Header, Writer};

enum Mode {
    Live,
    Recording(Box<Writer>),
    /// The facts of the frame being replayed, by (key, nth ask).
    Replaying(HashMap<(String, u32), serde_json::Value>),
}

/// What replay did not ask of the recording, or could not read. (An ask the recording
/// has no answer for gets the type's default, as a default answer is not written.)
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// In the recording but never asked (the replay took another path: another policy).
    pub unused: u64,
    /// Recorded answers that did not parse as what was asked.
    pub malformed: u64,
}

pub struct Facts {
    mode: RefCell<Mode>,
    /// Asks per key in the current frame (recording and replaying).
    asks: RefCell<HashMap<String, u32>>,
    replay: Cell<ReplayStats>,
}

impl Facts {
    /// Looks at the host, records nothing.
    pub fn live() -> Rc<Self> {
        Rc::new(Self::with(Mode::Live))
    }

    /// Looks at the host and writes every frame and answer to `path`.
    pub fn recording(path: &Path, header: &Header) -> anyhow::Result<Rc<Self>> {
        Ok(Rc::new(Self::with(Mode::Recording(Box::new(Writer::create(
            path, header,
        )?)))))
    }

    /// Answers from a recording (`begin_frame` loads each frame's facts).
    pub fn replaying() -> Rc<Self> {
        Rc::new(Self::with(Mode::Replaying(HashMap::new())))
    }

    fn with(mode: Mode) -> Self {
        Self {
            mode: RefCell::new(mode),
            asks: RefCell::default(),
            replay: Cell::default(),
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(*self.mode.borrow(), Mode::Replaying(_))
    }

    /// The answer to `key` (built only when recording or replaying): `live()` on the
    /// host, or the recorded answer. `live` must not itself look facts up.
    pub fn look<T>(&self, key: impl FnOnce() -> String, live: impl FnOnce() -> T) -> T
    where
        T: Serialize + DeserializeOwned + Default + PartialEq,
    {
        if matches!(*self.mode.borrow(), Mode::Live) {
            return live();
        }
        let key = key();
        let nth = {
            let mut asks = self.asks.borrow_mut();
            let n = asks.entry(key.clone()).or_default();
            *n += 1;
            *n - 1
        };
        if let Mode::Replaying(facts) = &mut *self.mode.borrow_mut() {
            let mut stats = self.replay.get();
            let answer = match facts.remove(&(key, nth)) {
                Some(v) => serde_json::from_value(v).unwrap_or_else(|_| {
                    stats.malformed += 1;
                    T::default()
                }),
                None => T::default(),
            };
            self.replay.set(stats);
            return answer;
        }
        let answer = live();
        if answer != T::default() {
            match serde_json::to_value(&answer) {
                Ok(value) => self.write(&Frame::Fact { key, nth, value }),
                Err(e) => warn!("recording: fact {key}: {e}"),
            }
        }
        answer
    }

    /// A new frame: recorded now (its facts follow), or replayed with `facts`.
    pub fn begin_frame(&self, frame: &Frame, facts: Vec<Frame>) {
        self.asks.borrow_mut().clear();
        match &mut *self.mode.borrow_mut() {
            Mode::Live => {}
            Mode::Recording(_) => {}
            Mode::Replaying(current) => {
                let mut stats = self.replay.get();
                stats.unused += current.len() as u64;
                self.replay.set(stats);
                current.clear();
                for f in facts {
                    if let Frame::Fact { key, nth, value } = f {
                        current.insert((key, nth), value);
                    }
                }
                return;
            }
        }
        self.write(frame);
    }

    /// A record from the ring buffer begins a frame (recording: written as it is).
    pub fn begin_record(&self, bytes: &[u8]) {
        self.asks.borrow_mut().clear();
        let mut mode = self.mode.borrow_mut();
        if let Mode::Recording(w) = &mut *mode
            && let Err(e) = w.write_record(bytes)
        {
            warn!("recording stopped: {e}");
            *mode = Mode::Live;
        }
    }

    fn write(&self, frame: &Frame) {
        let mut mode = self.mode.borrow_mut();
        let Mode::Recording(w) = &mut *mode else {
            return;
        };
        if let Err(e) = w.write(frame) {
            // Recording is a diagnostic: the daemon goes on without it.
            warn!("recording stopped: {e}");
            *mode = Mode::Live;
        }
    }

    /// Writes out what is buffered (at each flush of the events).
    pub fn flush(&self) {
        let mut mode = self.mode.borrow_mut();
        if let Mode::Recording(w) = &mut *mode
            && let Err(e) = w.flush()
        {
            warn!("recording stopped: {e}");
            *mode = Mode::Live;
        }
    }

    /// Bytes written to the recording so far.
    pub fn recorded_bytes(&self) -> Option<u64> {
        match &*self.mode.borrow() {
            Mode::Recording(w) => Some(w.bytes),
            _ => None,
        }
    }

    pub fn replay_stats(&self) -> ReplayStats {
        let mut stats = self.replay.get();
        if let Mode::Replaying(current) = &*self.mode.borrow() {
            stats.unused += current.len() as u64;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_answers_what_was_recorded_per_ask_and_defaults_the_rest() {
        let path = std::env::temp_dir().join(format!("facts-{}.mcprec", std::process::id()));
        let rec = Facts::recording(&path, &Header::default()).unwrap();
        let frame = Frame::Record(vec![9]);
        rec.begin_frame(&frame, Vec::new());
        let mut calls = 0;
        let mut ask = |v: Option<u32>| {
            rec.look(
                || "fd/1/3".to_string(),
                || {
                    calls += 1;
                    v
                },
            )
        };
        assert_eq!(ask(None), None);
        assert_eq!(ask(Some(5)), Some(5));
        rec.flush();
        drop(rec);
        assert_eq!(calls, 2);

        let (mut r, _, first) = super::super::Reader::open(&path).unwrap();
        assert!(first.is_empty());
        let (frame, facts) = r.next_with_facts().unwrap().unwrap();
        assert_eq!(facts.len(), 1, "the default answer is not written");
        let _ = std::fs::remove_file(&path);
        let replay = Facts::replaying();
        replay.begin_frame(&frame, facts);
        let live = || -> Option<u32> { panic!("replay does not look at the host") };
        assert_eq!(replay.look(|| "fd/1/3".into(), live), None);
        assert_eq!(replay.look(|| "fd/1/3".into(), live), Some(5));
        assert_eq!(replay.look(|| "fd/1/3".into(), live), None);
        assert_eq!(replay.replay_stats(), ReplayStats::default());
    }
}
