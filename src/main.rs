#[global_allocator]
static ALLOCATOR: gpu_fault_injector::alloc::ByRole = gpu_fault_injector::alloc::ByRole;

fn main() -> std::process::ExitCode {
    if gpu_fault_injector::alloc::mimalloc_for(std::env::args_os()) {
        gpu_fault_injector::alloc::use_mimalloc();
    }
    gpu_fault_injector::cli::main()
}
