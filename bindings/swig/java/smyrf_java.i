/* Java specifics of the libsmyrf wrappers (included by ../smyrf.i; swig -java -package
 * org.smyrf).
 *
 * The generated classes are the raw layer under the hand-written facade of
 * bindings/java (Config, Plan): SmyrfNative and SmyrfNativeJNI are package-private, only
 * the enums Param, Mode, Layout and Status are public.
 *
 * - A failed smyrf_status throws org.smyrf.SmyrfException from the wrapper, after every
 *   output and array is released, with the message of this thread read first; a
 *   successful status is not returned (the Java methods are void).
 * - Handles (smyrf_config *, smyrf_plan *) cross as long; handle and value outputs
 *   (smyrf_plan **plan, int64_t *value, double *scale, ...) are one-element arrays.
 * - Tensor arguments of smyrf_execute and smyrf_execute_backward are java.nio direct
 *   buffers (null = NULL): the address of the buffer is passed as is, no copy. The stream
 *   is always NULL (host memory, CPU backend).
 * - smyrf_java_execute_arrays and smyrf_java_backward_arrays are the float[] / byte[]
 *   variants of smyrf_execute and smyrf_execute_backward. */

%javaconst(1);
%pragma(java) moduleclassmodifiers = "final class"
%pragma(java) jniclassclassmodifiers = "final class"
%pragma(java) jniclasscode = %{
  static {
    NativeLibrary.load();
  }

  /** Does nothing; calling it runs the static initialiser above once. */
  static void ensureLoaded() {}
%}

/* Used inside this layer only: the throw helper reads them at the right moment. */
%ignore smyrf_status_string;
%ignore smyrf_last_error_message;
%ignore SMYRF_VERSION_MAJOR;
%ignore SMYRF_VERSION_MINOR;
%ignore SMYRF_VERSION_PATCH;
%ignore SMYRF_VERSION_NUMBER;

/* ---------------------------------------------------------------- enums */

%include <enums.swg>
%rename(Status) smyrf_status;
%rename(Param) smyrf_param;
%rename(Mode) smyrf_mode;
%rename(Dtype) smyrf_dtype;
%rename(Backend) smyrf_backend;
%rename(Layout) smyrf_layout;
/* SMYRF_PARAM_Q_LEN is Param.Q_LEN; statuses keep ERR_ (Status.ERR_DEVICE, Param.DEVICE). */
%rename("%(regex:/^SMYRF_(PARAM_|MODE_|DTYPE_|BACKEND_|LAYOUT_)?(.*)$/\\2/)s", %$isenumitem) "";

%typemap(javaclassmodifiers) enum smyrf_status %{/** The status of a failed libsmyrf call, carried by {@link SmyrfException}. */
public enum%}
%typemap(javaclassmodifiers) enum smyrf_param %{/**
 * Every parameter of a plan, as numbered in smyrf.h (where each one is described); set
 * with {@link Config#set}, read back resolved with {@link Plan#get}.
 */
public enum%}
%typemap(javaclassmodifiers) enum smyrf_mode %{/** What a plan computes: SMYRF, exact DENSE attention, or HYBRID (see smyrf.h). */
public enum%}
%typemap(javaclassmodifiers) enum smyrf_layout %{/** The memory order of q, k, v and out: [batch, heads, tokens, dim] or [batch, tokens, heads, dim]. */
public enum%}
/* Java hands the library host float32 memory only: these two stay internal. */
%typemap(javaclassmodifiers) enum smyrf_dtype "enum"
%typemap(javaclassmodifiers) enum smyrf_backend "enum"

/* Every item has its value written in smyrf.h; the value is package-private. */
%typemap(javabody) enum SWIGTYPE %{
  final int swigValue() {
    return swigValue;
  }

  static $javaclassname swigToEnum(int swigValue) {
    for ($javaclassname item : values())
      if (item.swigValue == swigValue)
        return item;
    throw new IllegalArgumentException("no $javaclassname with value " + swigValue);
  }

  private $javaclassname(int swigValue) {
    this.swigValue = swigValue;
  }

  private final int swigValue;
%}

/* ---------------------------------------------------------------- helpers (C: the wrapper is compiled as C) */

%{
/* Throws org.smyrf.SmyrfException(status, status text, message of this thread). */
static void smyrf_java_throw(JNIEnv *jenv, smyrf_status status) {
    jstring text = (*jenv)->NewStringUTF(jenv, smyrf_last_error_message());
    jstring name = text ? (*jenv)->NewStringUTF(jenv, smyrf_status_string(status)) : NULL;
    jclass cls = name ? (*jenv)->FindClass(jenv, "org/smyrf/SmyrfException") : NULL;
    jmethodID ctor = cls ? (*jenv)->GetMethodID(jenv, cls, "<init>",
                                  "(ILjava/lang/String;Ljava/lang/String;)V") : NULL;
    jobject exc = ctor ? (*jenv)->NewObject(jenv, cls, ctor, (jint)status, name, text) : NULL;
    if (exc) (*jenv)->Throw(jenv, (jthrowable)exc);
}

/* Checks that an output array holds at least one element; throws if not. */
static int smyrf_java_out_array(JNIEnv *jenv, jarray array, const char *name) {
    if (array && (*jenv)->GetArrayLength(jenv, array) >= 1) return 1;
    SWIG_JavaThrowException(jenv, SWIG_JavaIllegalArgumentException, name);
    return 0;
}

/* The address of a direct buffer (NULL for null); throws if the buffer is not direct. */
static int smyrf_java_address(JNIEnv *jenv, jobject buffer, const char *name, void **address) {
    *address = buffer ? (*jenv)->GetDirectBufferAddress(jenv, buffer) : NULL;
    if (!buffer || *address) return 1;
    SWIG_JavaThrowException(jenv, SWIG_JavaIllegalArgumentException, name);
    return 0;
}
%}

/* ---------------------------------------------------------------- statuses */

%typemap(jni) smyrf_status "jint"
%typemap(jtype) smyrf_status "int"
%typemap(jstype) smyrf_status "void"
%typemap(javaout) smyrf_status {
    $jnicall;
  }
%typemap(out) smyrf_status %{ $result = (jint)$1; %}
/* Runs after argout and freearg: nothing is left to release once the exception is set. */
%typemap(ret) smyrf_status %{
  if ($1 != SMYRF_OK) smyrf_java_throw(jenv, $1);
%}

/* ---------------------------------------------------------------- handles */

%define SMYRF_JAVA_HANDLE(TYPE)
%typemap(jni) TYPE *, const TYPE * "jlong"
%typemap(jtype) TYPE *, const TYPE * "long"
%typemap(jstype) TYPE *, const TYPE * "long"
%typemap(javain) TYPE *, const TYPE * "$javainput"
%typemap(in) TYPE *, const TYPE * %{ $1 = ($1_ltype)(intptr_t)$input; %}

%typemap(jni) TYPE ** "jlongArray"
%typemap(jtype) TYPE ** "long[]"
%typemap(jstype) TYPE ** "long[]"
%typemap(javain) TYPE ** "$javainput"
%typemap(in) TYPE ** (TYPE *handle = NULL) {
  if (!smyrf_java_out_array(jenv, $input, "$1_name: a long[1] is needed")) return $null;
  $1 = &handle;
}
%typemap(argout) TYPE ** {
  jlong value = (jlong)(intptr_t)handle$argnum;
  JCALL4(SetLongArrayRegion, jenv, $input, 0, 1, &value);
}
%enddef
SMYRF_JAVA_HANDLE(smyrf_config)
SMYRF_JAVA_HANDLE(smyrf_plan)

/* ---------------------------------------------------------------- value outputs */

%define SMYRF_JAVA_OUTPUT(CTYPE, NAME, JNITYPE, JNIARRAY, JAVAARRAY, SETTER)
%typemap(jni) CTYPE *NAME "JNIARRAY"
%typemap(jtype) CTYPE *NAME "JAVAARRAY"
%typemap(jstype) CTYPE *NAME "JAVAARRAY"
%typemap(javain) CTYPE *NAME "$javainput"
%typemap(in) CTYPE *NAME (CTYPE tmp = 0) {
  if (!smyrf_java_out_array(jenv, $input, "NAME: a JAVAARRAY of length 1 is needed")) return $null;
  $1 = &tmp;
}
%typemap(argout) CTYPE *NAME {
  JNITYPE value = (JNITYPE)tmp$argnum;
  JCALL4(SETTER, jenv, $input, 0, 1, &value);
}
%enddef
SMYRF_JAVA_OUTPUT(int64_t, value, jlong, jlongArray, long[], SetLongArrayRegion)
SMYRF_JAVA_OUTPUT(int64_t, lower, jlong, jlongArray, long[], SetLongArrayRegion)
SMYRF_JAVA_OUTPUT(int64_t, upper, jlong, jlongArray, long[], SetLongArrayRegion)
SMYRF_JAVA_OUTPUT(double, scale, jdouble, jdoubleArray, double[], SetDoubleArrayRegion)

/* ---------------------------------------------------------------- tensors */

%define SMYRF_JAVA_BUFFER(TYPE, NAME)
%typemap(jni) TYPE NAME "jobject"
%typemap(jtype) TYPE NAME "java.nio.Buffer"
%typemap(jstype) TYPE NAME "java.nio.Buffer"
%typemap(javain) TYPE NAME "$javainput"
%typemap(in) TYPE NAME {
  void *address;
  if (!smyrf_java_address(jenv, $input, "NAME: not a direct buffer", &address)) return $null;
  $1 = ($1_ltype)address;
}
%enddef
SMYRF_JAVA_BUFFER(const void *, q)
SMYRF_JAVA_BUFFER(const void *, k)
SMYRF_JAVA_BUFFER(const void *, v)
SMYRF_JAVA_BUFFER(const uint8_t *, key_mask)
SMYRF_JAVA_BUFFER(void *, out)
SMYRF_JAVA_BUFFER(float *, lse)
SMYRF_JAVA_BUFFER(void *, workspace)
/* smyrf_execute_backward: out and lse are inputs there (const void *out, const float
 * *lse: matched by the typemaps above), dout too; dq, dk, dv are its outputs. */
SMYRF_JAVA_BUFFER(const void *, dout)
SMYRF_JAVA_BUFFER(void *, dq)
SMYRF_JAVA_BUFFER(void *, dk)
SMYRF_JAVA_BUFFER(void *, dv)
%typemap(in, numinputs=0) void *stream %{ $1 = NULL; %}

/* ---------------------------------------------------------------- arrays */

%typemap(in, numinputs=0) JNIEnv *jenv %{ $1 = jenv; %}
%{
/* Borrows the n arrays of a call (null ones are skipped; the one at index byte_index, if
 * any, is a byte[], the others float[]). The JVM lends each as a copy. Returns 0 if one
 * could not be borrowed: an exception (OutOfMemoryError) is then pending. */
static int smyrf_java_borrow(JNIEnv *jenv, int n, const jarray *arrays, int byte_index,
                             void **elems) {
    int i;
    for (i = 0; i < n; i++) elems[i] = NULL;
    for (i = 0; i < n; i++) {
        if (!arrays[i]) continue;
        elems[i] = i == byte_index
                       ? (void *)(*jenv)->GetByteArrayElements(jenv, (jbyteArray)arrays[i], NULL)
                       : (void *)(*jenv)->GetFloatArrayElements(jenv, (jfloatArray)arrays[i], NULL);
        if (!elems[i]) return 0;
    }
    return 1;
}

/* Returns what smyrf_java_borrow lent: arrays from first_output on are written back when
 * commit is set (a successful call), every other one is released with JNI_ABORT (inputs,
 * or after a failure: the caller's arrays are unchanged). */
static void smyrf_java_give_back(JNIEnv *jenv, int n, const jarray *arrays, int byte_index,
                                 void **elems, int first_output, int commit) {
    int i;
    for (i = 0; i < n; i++) {
        jint mode = (i >= first_output && commit) ? 0 : JNI_ABORT;
        if (!elems[i]) continue;
        if (i == byte_index)
            (*jenv)->ReleaseByteArrayElements(jenv, (jbyteArray)arrays[i], (jbyte *)elems[i], mode);
        else
            (*jenv)->ReleaseFloatArrayElements(jenv, (jfloatArray)arrays[i], (jfloat *)elems[i], mode);
    }
}
%}
%inline %{
/* smyrf_execute on Java arrays (key_mask and lse may be null). The JVM lends each array
 * as a copy, released with JNI_ABORT (inputs, or after a failure: the caller's arrays are
 * unchanged) or written back (out and lse after success). */
void smyrf_java_execute_arrays(JNIEnv *jenv, const smyrf_plan *plan, jfloatArray q,
                               jfloatArray k, jfloatArray v, jbyteArray key_mask,
                               jfloatArray out, jfloatArray lse) {
    const jarray arrays[6] = {q, k, v, key_mask, out, lse};
    void *elems[6];
    smyrf_status status = SMYRF_OK;
    int acquired = smyrf_java_borrow(jenv, 6, arrays, 3, elems);
    if (acquired)
        status = smyrf_execute(plan, elems[0], elems[1], elems[2], (const uint8_t *)elems[3],
                               elems[4], (float *)elems[5], NULL, 0, NULL);
    smyrf_java_give_back(jenv, 6, arrays, 3, elems, 4, acquired && status == SMYRF_OK);
    if (status != SMYRF_OK) smyrf_java_throw(jenv, status);
}

/* smyrf_execute_backward on Java arrays (key_mask may be null), lent as by
 * smyrf_java_execute_arrays: dq, dk and dv are written back after success only. */
void smyrf_java_backward_arrays(JNIEnv *jenv, const smyrf_plan *plan, jfloatArray q,
                                jfloatArray k, jfloatArray v, jbyteArray key_mask,
                                jfloatArray out, jfloatArray lse, jfloatArray dout,
                                jfloatArray dq, jfloatArray dk, jfloatArray dv) {
    const jarray arrays[10] = {q, k, v, key_mask, out, lse, dout, dq, dk, dv};
    void *elems[10];
    smyrf_status status = SMYRF_OK;
    int acquired = smyrf_java_borrow(jenv, 10, arrays, 3, elems);
    if (acquired)
        status = smyrf_execute_backward(plan, elems[0], elems[1], elems[2],
                                        (const uint8_t *)elems[3], elems[4],
                                        (const float *)elems[5], elems[6], elems[7], elems[8],
                                        elems[9], NULL, 0, NULL);
    smyrf_java_give_back(jenv, 10, arrays, 3, elems, 7, acquired && status == SMYRF_OK);
    if (status != SMYRF_OK) smyrf_java_throw(jenv, status);
}
%}
