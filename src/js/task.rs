//! The calls that await: each one a task polled in a microtask, its result a promise. (No
//! executor crate: one kind of task, on one thread, is all this layer runs.)
//!
//! A task is queued when woken and polled in the next microtask, with every task queued before
//! it; one woken while those run waits for the microtask after. A promise becomes a future
//! through [`super::host::settled`].

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::host::{Global, Local};
use super::values;

type Call = Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

struct Task {
    /// `None` once settled.
    call: RefCell<Option<Call>>,
    /// Settles the task's promise (`host.js` `deferred`).
    settle: Function,
    queued: Cell<bool>,
}

// SAFETY: wasm32 without the atomics feature (see `Local`) has exactly one thread; `Arc` is here
// only because `Wake` asks for it.
unsafe impl Send for Task {}
unsafe impl Sync for Task {}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if self.queued.replace(true) {
            return;
        }
        QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            if q.is_empty() {
                RUN.with(|run| values::microtask(run.as_ref().unchecked_ref()));
            }
            q.push(self);
        });
    }
}

static QUEUE: Global<RefCell<Vec<Arc<Task>>>> = Global::new(RefCell::new(Vec::new()));
static RUN: Local<Closure<dyn FnMut()>> = Local::new(|| Closure::new(run));

/// Polls the tasks queued before this microtask.
fn run() {
    let tasks = QUEUE.with(|q| core::mem::take(&mut *q.borrow_mut()));
    for task in tasks {
        task.queued.set(false);
        let mut call = task.call.borrow_mut();
        let Some(fut) = call.as_mut() else { continue };
        let waker = Waker::from(task.clone());
        if let core::task::Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            *call = None;
            drop(call);
            let ok = r.is_ok();
            values::settle(&task.settle, ok, &r.unwrap_or_else(|e| e));
        }
    }
}

/// Runs `call` from the next microtask on; its promise settles as the call ends. Every kind of
/// call comes boxed as one future type, so the wasm holds one copy of the task code.
pub fn promise(call: Call) -> Promise {
    let settle = values::deferred();
    let p = values::promise_of(&settle);
    Arc::new(Task { call: RefCell::new(Some(call)), settle, queued: Cell::new(false) }).wake();
    p
}
