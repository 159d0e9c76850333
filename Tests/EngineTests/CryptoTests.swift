import Engine
@_spi(Engine) import PluginAPI
import XCTest

/// OpenSSL-backed crypto: known digests, incremental hashing equal to one-shot, random tokens.
final class CryptoTests: XCTestCase {
    func testSHA256IncrementalMatchesOneShotAndKnownDigest() throws {
        let crypto = OpenSSLCrypto()
        XCTAssertEqual(crypto.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let hasher = crypto.makeSHA256()
        var offset = 0
        for size in [1, 63, 64, 65, 4096, 100_000] where offset < data.count {
            hasher.update(Array(data[offset..<min(data.count, offset + size)]))
            offset += size
        }
        hasher.update(Array(data[offset...]))
        XCTAssertEqual(try hasher.finish(), crypto.sha256(data))
        // Regression (hardening #19): a second finish is an error, never an empty digest (an empty media id).
        XCTAssertThrowsError(try hasher.finish()) { error in
            XCTAssertEqual((error as? PluginError)?.code, "hash_failed")
        }
    }

    func testHMACAndRandom() {
        let crypto = OpenSSLCrypto()
        // RFC 4231 test case 2.
        XCTAssertEqual(
            Hex.encode(crypto.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let a = crypto.randomToken(bytes: 16)
        let b = crypto.randomToken(bytes: 16)
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(Base64URL.decode(a)?.count, 16)
    }
}
