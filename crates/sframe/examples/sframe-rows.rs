//! Prints the rows of a raw SFrame section: `sframe-rows FILE [ADDRESS]`.
use orc_sframe::read::Section;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).expect("read");
    let addr = args.get(2).map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).expect("hex address")).unwrap_or(0);
    let s = Section::parse(&bytes, addr).unwrap_or_else(|e| panic!("{e}"));
    println!("{:?}", s.header);
    for f in s.fdes() {
        let f = f.unwrap_or_else(|e| panic!("{e}"));
        println!("fde {:#x} size {} signal {} flexible {}", f.start, f.size, f.signal, f.flexible);
        for r in s.rows(&f) {
            match r {
                Ok(r) => println!("  {:#x} {:?}", f.start + u64::from(r.start), r.rule),
                Err(e) => println!("  error {e}"),
            }
        }
    }
}
