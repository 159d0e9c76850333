#ifndef ONIONRP_COPENSSL_SHIM_H
#define ONIONRP_COPENSSL_SHIM_H
#include <openssl/rand.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>
#endif
