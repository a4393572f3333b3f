//! A safety net: a panic while running a chunk (a bug in an API function, never bad input)
//! becomes an error message, so the session, its cleanups and its history survive it.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct CatchPanic<F: Future>(Pin<Box<F>>);

impl<F: Future> CatchPanic<F> {
    pub fn new(fut: F) -> Self {
        CatchPanic(Box::pin(fut))
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl<F, T> Future for CatchPanic<F>
where
    F: Future<Output = mlua::Result<T>>,
{
    type Output = mlua::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(p) => p,
            Err(payload) => Poll::Ready(Err(mlua::Error::runtime(format!(
                "internal error (a bug in gfi; please report it): {}",
                panic_text(payload.as_ref())
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r: mlua::Result<()> = rt.block_on(CatchPanic::new(async {
            if true {
                panic!("broken invariant");
            }
            Ok(())
        }));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("internal error"), "{e}");
        assert!(e.contains("broken invariant"), "{e}");
        let ok: mlua::Result<i32> = rt.block_on(CatchPanic::new(async { Ok(7) }));
        assert_eq!(ok.unwrap(), 7);
    }
}
