//! Hostile variants of real components, made by adding to their bytes what Rust does not emit:
//! more memories, a mass of code to compile, padding. Each variant still holds the component
//! it was made from, which instantiates as before.

use wasm_encoder::{ComponentSection, Encode};

/// The number of core modules a component defines at its top level: the index the next one
/// gets.
fn top_level_modules(component: &[u8]) -> u32 {
    let mut depth = 0;
    let mut modules = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.expect("a valid component") {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ModuleSection { .. } if depth == 1 => modules += 1,
            _ => {}
        }
    }
    modules
}

fn append_module(out: &mut Vec<u8>, module: &wasm_encoder::Module) {
    let section = wasm_encoder::ModuleSection(module);
    out.push(section.id());
    section.encode(out);
}

/// `component` with `count` core instances added, each of a module declaring one memory of
/// `pages` 64 KiB pages, which the component instantiates with its own.
pub fn with_memories(component: &[u8], count: u32, pages: u64) -> Vec<u8> {
    let index = top_level_modules(component);
    let mut module = wasm_encoder::Module::new();
    let mut memories = wasm_encoder::MemorySection::new();
    memories.memory(wasm_encoder::MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut instances = wasm_encoder::InstanceSection::new();
    for _ in 0..count {
        instances.instantiate(index, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
    }
    let mut out = component.to_vec();
    append_module(&mut out, &module);
    out.push(instances.id());
    instances.encode(&mut out);
    out
}

/// `component` with a module of `functions` functions added, each a long chain of
/// arithmetic: code that takes the compiler a while.
pub fn with_code(component: &[u8], functions: u32) -> Vec<u8> {
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, TypeSection, ValType};
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut declared = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in 0..functions {
        declared.function(0);
        let mut body = Function::new([]);
        body.instruction(&Instruction::LocalGet(0));
        for i in 0..200 {
            body.instruction(&Instruction::I32Const(i));
            body.instruction(&Instruction::I32Add);
            body.instruction(&Instruction::I32Const(3));
            body.instruction(&Instruction::I32Mul);
        }
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut module = wasm_encoder::Module::new();
    module.section(&types).section(&declared).section(&code);
    let mut out = component.to_vec();
    append_module(&mut out, &module);
    out
}

/// `component` with a custom section of `bytes` bytes of `fill` added: a larger upload, and a
/// new one to the compilation cache when `fill` is new.
pub fn with_padding(component: &[u8], bytes: usize, fill: u8) -> Vec<u8> {
    let padding = vec![fill; bytes];
    let section = wasm_encoder::CustomSection {
        name: "padding".into(),
        data: padding.into(),
    };
    let mut out = component.to_vec();
    out.push(section.id());
    section.encode(&mut out);
    out
}
