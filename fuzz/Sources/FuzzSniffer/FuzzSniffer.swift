// Fuzzes the Media plugin's type sniffer (MediaSniffer.detect), the image-size readers (imageSize for
// PNG/GIF/WebP, jpegSize walking JPEG segments through a read callback) and the structural image
// validator (ImageValidator.validate: PNG chunks and CRCs, JPEG segments, GIF blocks, WebP RIFF chunks).
//
// Input: an uploaded file. Invariants: no trap; a supported format is one of MediaFormat.all; sizes
// are positive; the validator reads only inside the file.

import FuzzSupport
@testable import Media

func fuzzOne(_ input: [UInt8]) {
    let head = Array(input.prefix(MediaSniffer.headSize))
    for whole in [true, false] {
        let detection = MediaSniffer.detect(head, isWholeFile: whole && head.count == input.count)
        if case .supported(let format) = detection {
            if !MediaFormat.all.contains(format) { fuzzFail("detected a format that is not accepted: \(format)") }
            if let size = MediaSniffer.imageSize(format, head: head), size.width <= 0 || size.height <= 0 {
                fuzzFail("non-positive image size \(size)")
            }
        }
    }
    for format in [MediaFormat.png, .gif, .webp] { _ = MediaSniffer.imageSize(format, head: head) }
    let size = MediaSniffer.jpegSize { offset, count in
        guard offset >= 0, offset < input.count, count > 0 else { return [] }
        return Array(input[offset..<min(input.count, offset + count)])
    }
    if let size, size.width <= 0 || size.height <= 0 { fuzzFail("non-positive JPEG size \(size)") }
    // The whole file through the structural validator, as each image format (a short read at the end, like pread).
    for format in [MediaFormat.png, .jpeg, .gif, .webp] {
        try? ImageValidator.validate(format, size: input.count) { offset, count in
            guard offset >= 0, count >= 0 else { fuzzFail("validator read at \(offset), \(count) bytes") }
            guard offset < input.count else { return [] }
            return Array(input[offset..<min(input.count, offset + count)])
        }
    }
}

@_cdecl("FuzzSniffer_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
