//! Code generation for `#[task]`: checks the function's signature and writes the task kind
//! (a struct implementing `Task`) and the call function (returning a `TaskCall`).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemFn, Pat, PatType, PathArguments, ReturnType, Type,
};

use crate::options::TaskOptions;

/// How the function's return type maps onto `Result<Output, TaskError>`.
enum Returns {
    /// `Result<T, E>` or an alias `Result<T>`: `Output = T`, errors go through
    /// `TaskError::from`.
    Result(Type),
    /// Any other `T`: `Output = T`, wrapped in `Ok`.
    Value(Type),
    /// No return type: `Output = ()`.
    Unit,
}

/// One argument of the task: a plain name and an owned type.
struct Arg {
    name: Ident,
    ty: Type,
}

/// Expands `#[task(opts)] item`.
pub(crate) fn expand(opts: TaskOptions, item: ItemFn) -> syn::Result<TokenStream> {
    let krate = match &opts.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::skiff),
    };
    check_signature(&item)?;
    let (has_context, args) = arguments(&opts, &item)?;
    if let (Some((_, span)), Some(first)) = (&opts.periodic, args.first()) {
        let mut err = syn::Error::new_spanned(
            &first.ty,
            "a periodic task takes no arguments (the consumer enqueues it by itself, with \
             nothing to pass); only a first `TaskContext` with `#[task(context)]` is allowed",
        );
        err.combine(syn::Error::new(*span, "the task is periodic here"));
        return Err(err);
    }
    let returns = returns(&item.sig.output);

    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let fn_name = sig.ident.clone();
    let task_name = opts
        .name
        .clone()
        .unwrap_or_else(|| fn_name.unraw().to_string());
    let (cfg_attrs, call_attrs, body_attrs) = split_attrs(attrs);

    let arg_names: Vec<&Ident> = args.iter().map(|a| &a.name).collect();
    let arg_tys: Vec<&Type> = args.iter().map(|a| &a.ty).collect();
    let output = match &returns {
        Returns::Result(t) | Returns::Value(t) => t.to_token_stream(),
        Returns::Unit => quote!(()),
    };
    let options = options_fn(&opts, &krate);

    // The user's function, kept whole as an inner item so `?`, `return` and lifetimes behave
    // as written.
    let mut body_sig = sig.clone();
    body_sig.ident = Ident::new("__skiff_body", fn_name.span());
    let body_fn = quote! {
        #(#body_attrs)*
        #body_sig #block
    };
    let ctx_arg = has_context.then(|| quote!(__skiff_ctx,));
    let call_body = quote!(__skiff_body(#ctx_arg #(#arg_names),*));
    let wrap = |ran: TokenStream| match &returns {
        Returns::Result(_) => {
            quote!(::core::result::Result::map_err(#ran, #krate::TaskError::from))
        }
        Returns::Value(_) | Returns::Unit => quote!(::core::result::Result::Ok(#ran)),
    };
    // Spanned at the function's name, so "future is not `Send`" and similar errors point there.
    let span = fn_name.span();
    let start = if sig.asyncness.is_some() {
        let done = wrap(quote!(#call_body.await));
        quote_spanned!(span=> ::std::boxed::Box::pin(async move { #done }))
    } else {
        let done = wrap(call_body);
        quote_spanned!(span=> #krate::run_blocking(move || #done))
    };

    let struct_doc = format!(
        " The task kind of [`{fn_name}`](fn@{fn_name}), written by `#[task]`: task name \
         `{task_name}`. Register it with `register({fn_name})`; call `{fn_name}(..)` to enqueue."
    );

    Ok(quote! {
        #(#cfg_attrs)*
        #[allow(non_camel_case_types)]
        #[doc = #struct_doc]
        #vis struct #fn_name {}

        #(#cfg_attrs)*
        impl #krate::Task for #fn_name {
            const NAME: &'static str = #task_name;
            type Args = (#(#arg_tys,)*);
            type Output = #output;

            fn options() -> #krate::TaskOptions {
                #options
            }

            fn run(
                __skiff_ctx: #krate::TaskContext,
                __skiff_args: Self::Args,
            ) -> #krate::__private::BoxFuture<
                'static,
                ::core::result::Result<Self::Output, #krate::TaskError>,
            > {
                #body_fn
                let (#(#arg_names,)*) = __skiff_args;
                #start
            }
        }

        #(#call_attrs)*
        #vis fn #fn_name(#(#arg_names: #arg_tys),*) -> #krate::TaskCall<#fn_name> {
            #krate::TaskCall::new((#(#arg_names,)*))
        }
    })
}

/// The body of `Task::options`: `TaskOptions::new()` and a setter for each option given.
fn options_fn(opts: &TaskOptions, krate: &TokenStream) -> TokenStream {
    let millis = |ms: u64| quote!(::core::time::Duration::from_millis(#ms));
    let mut setters = Vec::new();
    if let Some(q) = &opts.queue {
        setters.push(quote!(.queue(#q)));
    }
    if let Some(p) = opts.priority {
        setters.push(quote!(.priority(#p)));
    }
    if let Some(r) = opts.retries {
        setters.push(quote!(.retries(#r)));
    }
    if let Some(ms) = opts.retry_delay {
        let d = millis(ms);
        setters.push(quote!(.retry_delay(#d)));
    }
    if let Some(f) = opts.retry_backoff {
        setters.push(quote!(.retry_backoff(#f)));
    }
    if let Some(ms) = opts.timeout {
        let d = millis(ms);
        setters.push(quote!(.timeout(#d)));
    }
    if let Some(ms) = opts.expires {
        let d = millis(ms);
        setters.push(quote!(.expires(#d)));
    }
    if let Some((cron, _)) = &opts.periodic {
        setters.push(quote!(.periodic(#cron)));
    }
    if let Some(lock) = &opts.lock {
        setters.push(quote!(.lock(#lock)));
    }
    if let Some(rate) = opts.rate_limit {
        let limit = rate.limit;
        let per = millis(u64::try_from(rate.per.as_millis()).unwrap_or(u64::MAX));
        setters.push(quote!(.rate_limit(#krate::task::RateLimit { limit: #limit, per: #per })));
    }
    quote!(#krate::TaskOptions::new() #(#setters)*)
}

/// Refuses what a task function cannot be: generic, a method, unsafe, extern, variadic.
fn check_signature(item: &ItemFn) -> syn::Result<()> {
    let sig = &item.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a task function cannot be generic: its arguments and output are stored, so their \
             types must be concrete (write one task per type)",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "a task function cannot be `unsafe`: the queue calls it",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(
            abi,
            "a task function cannot have an `extern` ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "a task function cannot be variadic",
        ));
    }
    Ok(())
}

/// Whether `ty` is `TaskContext` (any path ending in it).
fn is_task_context(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "TaskContext"),
        Type::Paren(p) => is_task_context(&p.elem),
        Type::Group(g) => is_task_context(&g.elem),
        _ => false,
    }
}

/// The task's arguments (the parameters, less a leading `TaskContext` when `context` is set).
fn arguments(opts: &TaskOptions, item: &ItemFn) -> syn::Result<(bool, Vec<Arg>)> {
    let mut params = item.sig.inputs.iter();
    let has_context = if let Some(flag) = opts.context {
        match params.next() {
            Some(FnArg::Typed(p)) if is_task_context(&p.ty) => {
                plain_name(p)?;
                true
            }
            Some(FnArg::Typed(p)) => {
                return Err(syn::Error::new_spanned(
                    &p.ty,
                    "with `#[task(context)]` the first parameter must be a `TaskContext` \
                     (owned, not a reference), e.g. `ctx: TaskContext`",
                ))
            }
            Some(FnArg::Receiver(r)) => return Err(receiver_error(r)),
            None => {
                return Err(syn::Error::new(
                    flag,
                    "`context` needs a first parameter of type `TaskContext`, e.g. \
                     `async fn my_task(ctx: TaskContext, ...)`",
                ))
            }
        }
    } else {
        false
    };
    let mut args = Vec::new();
    for param in params {
        let p = match param {
            FnArg::Receiver(r) => return Err(receiver_error(r)),
            FnArg::Typed(p) => p,
        };
        let name = plain_name(p)?;
        if is_task_context(&p.ty) {
            let hint = if has_context {
                "only the first parameter can be the `TaskContext`"
            } else {
                "to receive the task's context, add the flag: `#[task(context)]`, and make the \
                 `TaskContext` the first parameter"
            };
            return Err(syn::Error::new_spanned(&p.ty, hint));
        }
        match &*p.ty {
            Type::Reference(r) => {
                return Err(syn::Error::new_spanned(
                    r,
                    "task arguments are stored, so they must be owned: take `String` rather \
                     than `&str`, `Vec<T>` rather than `&[T]`",
                ))
            }
            Type::ImplTrait(t) => {
                return Err(syn::Error::new_spanned(
                    t,
                    "a task function cannot be generic: `impl Trait` arguments are not \
                     supported, use a concrete type",
                ))
            }
            _ => {}
        }
        args.push(Arg {
            name,
            ty: (*p.ty).clone(),
        });
    }
    Ok((has_context, args))
}

fn receiver_error(receiver: &syn::Receiver) -> syn::Error {
    syn::Error::new_spanned(
        receiver,
        "a task cannot take `self`: `#[task]` goes on a free function (not a method), whose \
         parameters become the task's arguments",
    )
}

/// The parameter's name, which must be a plain identifier (`mut` allowed).
fn plain_name(p: &PatType) -> syn::Result<Ident> {
    match &*p.pat {
        Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => Ok(pi.ident.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            "task parameters must be plain names such as `pair: (u8, u8)`: the call function \
             takes them by name; destructure inside the body",
        )),
    }
}

/// Classifies the return type. `Result<T, E>` and `Result<T>` (an alias, such as
/// `std::io::Result<T>`) are results; anything else is a value.
fn returns(output: &ReturnType) -> Returns {
    let ty = match output {
        ReturnType::Default => return Returns::Unit,
        ReturnType::Type(_, ty) => ty,
    };
    if let Type::Path(p) = &**ty {
        if p.qself.is_none() {
            if let Some(last) = p.path.segments.last() {
                if last.ident == "Result" {
                    if let PathArguments::AngleBracketed(a) = &last.arguments {
                        let types: Vec<&Type> = a
                            .args
                            .iter()
                            .filter_map(|g| match g {
                                GenericArgument::Type(t) => Some(t),
                                _ => None,
                            })
                            .collect();
                        if let [ok, ..] = types.as_slice() {
                            if types.len() <= 2 {
                                return Returns::Result((*ok).clone());
                            }
                        }
                    }
                }
            }
        }
    }
    Returns::Value((**ty).clone())
}

/// Splits the function's attributes: `cfg` goes on every item; docs, lint levels and
/// `deprecated` on the call function; everything else (and lint levels) on the body.
fn split_attrs(attrs: Vec<Attribute>) -> (Vec<Attribute>, Vec<Attribute>, Vec<Attribute>) {
    let (mut cfg, mut call, mut body) = (Vec::new(), Vec::new(), Vec::new());
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("cfg") {
            cfg.push(attr);
        } else if path.is_ident("doc") || path.is_ident("deprecated") {
            call.push(attr);
        } else if ["allow", "warn", "deny", "forbid"]
            .iter()
            .any(|l| path.is_ident(l))
        {
            call.push(attr.clone());
            body.push(attr);
        } else {
            body.push(attr);
        }
    }
    (cfg, call, body)
}
