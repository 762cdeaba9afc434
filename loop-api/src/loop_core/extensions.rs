//! Per-loop state of the optional subsystems (the default executor, signal
//! handlers, the child-process watcher), created on first use.
//!
//! The loop core knows nothing about these subsystems: it owns one
//! [`Extensions`] table and calls [`Extensions::close_all`] when it closes,
//! so each subsystem can stop its internal operations, restore process-wide
//! state (signal dispositions) and hand off what must outlive the loop
//! (children still running) while the backend is still alive.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::rc::Rc;

use crate::loop_core::EventLoop;

/// A subsystem's per-loop state.
pub(crate) trait Extension: 'static {
    /// Called once when the loop closes, before its callbacks, tasks and
    /// backend are dropped. The loop already reports `is_closed()`.
    fn on_close(&self, lp: &EventLoop);
}

/// One extension: its type, and the same value seen as `Any` (to downcast)
/// and as an [`Extension`] (to close).
type Slot = (TypeId, Rc<dyn Any>, Rc<dyn Extension>);

/// One slot per extension type, in creation order.
#[derive(Default)]
pub(crate) struct Extensions {
    slots: RefCell<Vec<Slot>>,
}

impl Extensions {
    /// The extension of type `T`, if it was created.
    pub(crate) fn get<T: Extension>(&self) -> Option<Rc<T>> {
        let slots = self.slots.borrow();
        let (_, any, _) = slots.iter().find(|(id, _, _)| *id == TypeId::of::<T>())?;
        any.clone().downcast::<T>().ok()
    }

    /// The extension of type `T`, created with `make` on first use.
    pub(crate) fn get_or_insert_with<T: Extension>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        match self.get_or_try_insert_with(|| Ok::<T, std::convert::Infallible>(make())) {
            Ok(ext) => ext,
            Err(never) => match never {},
        }
    }

    /// The extension of type `T`, created with the fallible `make` on first use.
    pub(crate) fn get_or_try_insert_with<T: Extension, E>(
        &self,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Rc<T>, E> {
        if let Some(ext) = self.get::<T>() {
            return Ok(ext);
        }
        let ext = Rc::new(make()?);
        self.slots
            .borrow_mut()
            .push((TypeId::of::<T>(), ext.clone(), ext.clone()));
        Ok(ext)
    }

    /// Runs every extension's close hook, in creation order, then drops them.
    /// No borrow is held while a hook runs.
    pub(crate) fn close_all(&self, lp: &EventLoop) {
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        for (_, _, ext) in &slots {
            ext.on_close(lp);
        }
        drop(slots);
    }
}
