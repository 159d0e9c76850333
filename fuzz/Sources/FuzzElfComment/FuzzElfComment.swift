// Fuzzes the plugin loader's ELF reader (ToolchainStamp.comments): it reads the `.comment` section of any file named
// as a plugin before dlopen, so a truncated, hostile or non-ELF file must give nil or strings, never a crash.
//
// Input: the file's bytes. Half the runs start from a valid ELF64 header so the section walk is reached.
// Invariants: no negative offsets or counts are asked for; the strings returned are exactly the NUL-separated content of the bytes read.

import FuzzSupport
@testable import Engine

func fuzzOne(_ input: [UInt8]) {
    var file = input
    if file.first.map({ $0 & 1 == 1 }) ?? false, file.count >= 64 {
        file.replaceSubrange(0..<6, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1])
    }
    var negative = false
    let comments = ToolchainStamp.comments { offset, count in
        guard offset >= 0, count >= 0 else {
            negative = true
            return nil
        }
        // Like FileHandle: past the end there are no bytes, near it fewer than asked.
        guard offset < file.count else { return [] }
        return Array(file[offset..<min(file.count, offset + min(count, file.count - offset))])
    }
    if negative { fuzzFail("the reader asked for a negative offset or count") }
    for comment in comments ?? [] where comment.utf8.contains(0) {
        fuzzFail("a returned string contains NUL: \(comment.debugDescription)")
    }
    _ = ToolchainStamp.toolchain(comments ?? [])
}

@_cdecl("FuzzElfComment_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
