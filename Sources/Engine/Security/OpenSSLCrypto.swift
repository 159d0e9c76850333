// Security: secure random, SHA-256 and HMAC through OpenSSL's libcrypto.

import COpenSSL
@_spi(Engine) import PluginAPI

/// ``CryptoProvider`` backed by OpenSSL.
public struct OpenSSLCrypto: CryptoProvider {
    /// Creates the provider.
    public init() {}

    public func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return bytes }
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        // RAND_bytes fails only when the generator cannot be seeded; continuing would hand out guessable secrets.
        precondition(ok == 1, "OpenSSL RAND_bytes failed: the system has no entropy source")
        return bytes
    }

    public func sha256(_ data: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        data.withUnsafeBufferPointer { input in
            digest.withUnsafeMutableBufferPointer { output in
                _ = SHA256(input.baseAddress, input.count, output.baseAddress)
            }
        }
        return digest
    }

    public func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { hmac(EVP_sha256(), key: key, message: message) }

    public func makeSHA256() -> any IncrementalHash { OpenSSLSHA256() }

    public func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] { hmac(EVP_sha1(), key: key, message: message) }

    private func hmac(_ md: OpaquePointer?, key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(md, k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        return Array(out.prefix(Int(length)))
    }
}

/// An incremental SHA-256 on an OpenSSL digest context.
final class OpenSSLSHA256: IncrementalHash {
    private let context: OpaquePointer?
    private var finished = false

    init() {
        context = EVP_MD_CTX_new()
        // Fails only when OpenSSL cannot allocate; finish() then reports an empty digest.
        _ = EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: [UInt8]) {
        guard !finished else { return }
        bytes.withUnsafeBytes { raw in _ = EVP_DigestUpdate(context, raw.baseAddress, raw.count) }
    }

    func finish() throws -> [UInt8] {
        guard !finished else {
            throw PluginError(status: 500, code: "hash_failed", message: "the SHA-256 digest was already taken")
        }
        finished = true
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        guard ok == 1, length == UInt32(SHA256_DIGEST_LENGTH) else {
            throw PluginError(status: 500, code: "hash_failed", message: "OpenSSL could not compute a SHA-256 digest")
        }
        return digest
    }
}
