// wgsl_reflect's package "main" is CommonJS under "type": "module", so Node gets nothing from a bare
// import; its ES module file works, and its types are the package's own.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
