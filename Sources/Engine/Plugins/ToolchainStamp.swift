// Plugins: which compiler built a library, read from its ELF `.comment` section, so that a plugin built by another
// Swift toolchain is refused with one clear line instead of crashing inside dlopen or at its first call.

import Foundation

/// The compiler identification an ELF file carries in its `.comment` section.
///
/// Swift's LLVM writes `clang version X (https://github.com/swiftlang/llvm-project.git <commit>)` there, which names
/// the exact toolchain build; the engine compares its own with a plugin's before opening the plugin. PluginAPI is not
/// built with library evolution, so a plugin and the engine must come from the same compiler as well as the same
/// PluginAPI version.
enum ToolchainStamp {
    /// Largest `.comment` section read (real ones are a few hundred bytes).
    static let maxCommentBytes = 64 << 10

    /// The NUL-separated strings of the `.comment` section of an ELF64 little-endian file, read through `read`
    /// (offset, count) -> bytes; nil when the bytes are not such a file or have no readable `.comment`.
    static func comments(read: (Int, Int) -> [UInt8]?) -> [String]? {
        guard let header = read(0, 64), header.count == 64,
            header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46,  // \x7FELF
            header[4] == 2, header[5] == 1
        else { return nil }  // 64-bit, little-endian
        func integer(_ bytes: [UInt8], _ at: Int, _ size: Int) -> Int? {
            guard at >= 0, at + size <= bytes.count else { return nil }
            var value: UInt64 = 0
            for index in (0..<size).reversed() { value = value << 8 | UInt64(bytes[at + index]) }
            return value > UInt64(Int.max) ? nil : Int(value)
        }
        guard let sectionsAt = integer(header, 0x28, 8), let entrySize = integer(header, 0x3A, 2),
            let count = integer(header, 0x3C, 2), let namesIndex = integer(header, 0x3E, 2),
            entrySize >= 64, count > 0, count <= 4096, namesIndex < count
        else { return nil }
        func section(_ index: Int) -> (name: Int, offset: Int, size: Int)? {
            let (start, overflow) = sectionsAt.addingReportingOverflow(index * entrySize)
            guard !overflow, let entry = read(start, 64), entry.count == 64,
                let name = integer(entry, 0, 4), let offset = integer(entry, 0x18, 8), let size = integer(entry, 0x20, 8)
            else { return nil }
            return (name, offset, size)
        }
        guard let names = section(namesIndex), names.size <= 1 << 20, let table = read(names.offset, names.size),
            table.count == names.size
        else { return nil }
        let wanted = Array(".comment".utf8) + [0]
        for index in 0..<count {
            guard let entry = section(index), entry.name >= 0, entry.name + wanted.count <= table.count,
                Array(table[entry.name..<entry.name + wanted.count]) == wanted
            else { continue }
            guard entry.size <= maxCommentBytes, let bytes = read(entry.offset, entry.size), bytes.count == entry.size else { return nil }
            return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
        return nil
    }

    /// The toolchain lines of a list of comments: those naming Swift's LLVM or a Swift version.
    static func toolchain(_ comments: [String]) -> [String] {
        Array(Set(comments.filter { $0.contains("swiftlang/") || $0.contains("Swift version") })).sorted()
    }

    /// The toolchain lines of a file, or nil when they cannot be read (not ELF, no `.comment`, stripped of it).
    static func of(file path: String) -> [String]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let lines = comments { offset, count in
            guard offset >= 0, count >= 0 else { return nil }
            do {
                try handle.seek(toOffset: UInt64(offset))
                return Array(try handle.read(upToCount: count) ?? Data())
            } catch {
                return nil
            }
        }
        guard let lines else { return nil }
        let stamp = toolchain(lines)
        return stamp.isEmpty ? nil : stamp
    }

    /// The engine's own toolchain lines (read once).
    static let engine: [String]? = of(file: "/proc/self/exe")

    /// Why a plugin built by another toolchain must not be opened, or nil when it may (same toolchain, or unknown).
    static func mismatch(plugin path: String, engine: [String]? = ToolchainStamp.engine) -> String? {
        guard let engine, let plugin = of(file: path), Set(plugin).isDisjoint(with: engine) else { return nil }
        return
            "built by another Swift toolchain (\(plugin.joined(separator: "; "))) than the engine (\(engine.joined(separator: "; "))); rebuild it with the engine's toolchain: Swift plugins share the engine's runtime and PluginAPI layout"
    }
}
