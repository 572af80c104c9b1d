fn main() {
    std::process::exit(encoder::cli::main());
}
