/* Stands in for a libsmyrfjni.so of another release: the one entry point NativeLibrary asks
 * after loading, answering version 0.0.1. */
#include <jni.h>

JNIEXPORT jlong JNICALL Java_org_smyrf_SmyrfNativeJNI_smyrf_1version_1number(JNIEnv *env,
                                                                               jclass cls) {
    (void)env;
    (void)cls;
    return 1;
}
