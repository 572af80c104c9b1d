//! Runtimes inside network namespaces: a server or a client of a test runs in-process, yet on
//! the network of one host of the test bed ([`crate::netbed`]).
//!
//! A thread that joins a namespace (`setns`) makes its sockets there, and so do the threads it
//! starts: a Tokio runtime built on that thread has its workers and its blocking pool in the
//! namespace too. Dropping the runtime closes every socket at once, as a killed process would.

use std::future::Future;
use std::os::fd::AsFd;
use std::path::Path;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

/// A Tokio runtime whose every socket lives in one network namespace.
pub struct NsRuntime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// A runtime with `workers` threads in the namespace named `ns` (`ip netns` names).
    pub fn start(ns: &str, workers: usize) -> Result<Self, String> {
        let path = Path::new("/var/run/netns").join(ns);
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("ns-{ns}"))
            .spawn(move || {
                let joined = rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| format!("setns: {e}"));
                let runtime = joined.and_then(|()| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(workers)
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())
                });
                let runtime: Runtime = match runtime {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Every task is dropped mid-flight (nothing runs to its end), and with it every
                // socket, before this returns: the address is free for whatever starts next.
                drop(runtime);
            })
            .map_err(|e| e.to_string())?;
        let handle = handle_rx.recv().map_err(|e| e.to_string())??;
        Ok(Self { handle, stop: Some(stop), thread: Some(thread) })
    }

    /// The runtime's handle, to spawn on it.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` in the namespace and waits for its output from any runtime.
    pub async fn run<F, T>(&self, future: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(future).await.expect("the task in the namespace panicked")
    }

    /// Ends every task and closes every socket at once, as a killed process would.
    pub fn kill(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        self.end();
    }
}
