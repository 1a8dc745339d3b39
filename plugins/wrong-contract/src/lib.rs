//! `wrong-contract`: exports a `generator` of an older, incompatible package.
#![expect(
    unsafe_code,
    reason = "wit-bindgen generates the export glue with unsafe code"
)]
#![expect(
    missing_docs,
    reason = "the bindings are generated from an inline WIT world"
)]

wit_bindgen::generate!({
    inline: "
        package bulkhost:plugin@0.0.1;

        interface generator {
            describe: func() -> string;
        }

        world dataset-generator {
            export generator;
        }
    ",
    world: "dataset-generator",
});

struct Wrong;

impl exports::bulkhost::plugin::generator::Guest for Wrong {
    fn describe() -> String {
        "nothing".into()
    }
}

export!(Wrong);
