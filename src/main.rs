fn main() -> std::process::ExitCode {
    gpu_fault_injector::cli::main()
}
